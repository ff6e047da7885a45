"""Activities of the local MCE: query activities, data filters, email sends, extracts and file transfers.

- A QueryDefinition's T-SQL is parsed with sqlglot's T-SQL dialect and run in DuckDB over
  the data extensions (by name) and the system data views; its rows go into the target
  DE through the same row rules as imports, in one statement: any refused row fails the
  query and nothing is written (a single INSERT ... SELECT in MCE is all or nothing).
- A FilterActivity copies the rows of its FilterDefinition's source DE that match the
  filter into the destination DE (replacing its rows).
- Perform start on an EmailSendDefinition sends to its sendable DE (see `tracking`).
- Extract writes a DE extract (CSV) or a tracking extract (zip of per-event CSVs) to
  the Safehouse; Perform start on a FileTransferActivity moves Safehouse files to the
  SFTP /Export folder. File transfers are set up "in the UI" (the constructor), as in MCE.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from nto_etl.mce import rules
from nto_etl.mce_local.clock import MCE_TIMEZONE, mce_now
from nto_etl.mce_local.dataext import DataExtensions, RowsRefused, fields_of, table_name
from nto_etl.mce_local.fieldtypes import FieldDef, lit, q, render_sql
from nto_etl.mce_local.filters import compile_filter
from nto_etl.mce_local.store import Store
from nto_etl.mce_local.tracking import DATA_VIEWS, Tracking

DE_EXTRACT = "bb94a04d-9632-4623-be47-daabc3f588a6"
TRACKING_EXTRACT = "c7219016-a7f0-4c72-8657-1ec12c28a0db"
UTC_CLOCKS = ("GETUTCDATE", "SYSUTCDATETIME")  # T-SQL functions sqlglot leaves as they are
TARGET_UPDATE_TYPES = {"Overwrite": "upsert", "Update": "upsert", "Append": "insert"}
TRACKING_FILES = {
    "ExtractSent": ("Sent.csv", "Sent", []),
    "ExtractOpens": ("Opens.csv", "Open", []),
    "ExtractClicks": ("Clicks.csv", "Click", ["URL"]),
    "ExtractBounces": ("Bounces.csv", "Bounce", ["BounceCategory", "SMTPCode", "BounceReason"]),
    "ExtractUnsubs": ("Unsubs.csv", "Unsubscribe", []),
}
# The tracking extract's send jobs (ExtractSendJobs): one row per send (job) sent in the window.
SEND_JOB_COLUMNS = [
    "ClientID",
    "SendID",
    "FromName",
    "FromEmail",
    "SchedTime",
    "SentTime",
    "Subject",
    "EmailName",
    "TriggeredSendExternalKey",
    "SendDefinitionExternalKey",
    "JobStatus",
    "PreviewURL",
    "IsMultipart",
    "Additional",
]
TRACKING_COLUMNS = [
    "ClientID",
    "SendID",
    "SubscriberKey",
    "EmailAddress",
    "SubscriberID",
    "ListID",
    "EventDate",
    "EventType",
    "BatchID",
]


class ActivityError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def filter_to_json(part: Any) -> dict[str, Any]:
    kind = type(part).__name__
    if kind == "ComplexFilterPart":
        return {
            "type": kind,
            "LeftOperand": filter_to_json(part.LeftOperand),
            "LogicalOperator": part.LogicalOperator,
            "RightOperand": filter_to_json(part.RightOperand),
        }
    return {
        "type": kind,
        "Property": part.Property,
        "SimpleOperator": part.SimpleOperator,
        "Value": list(part.Value or []),
        "DateValue": [d.isoformat() for d in (part.DateValue or [])],
    }


def filter_from_json(types: Any, data: dict[str, Any]) -> Any:
    if data["type"] == "ComplexFilterPart":
        return types.ComplexFilterPart(
            LeftOperand=filter_from_json(types, data["LeftOperand"]),
            LogicalOperator=data["LogicalOperator"],
            RightOperand=filter_from_json(types, data["RightOperand"]),
        )
    return types.SimpleFilterPart(
        Property=data["Property"],
        SimpleOperator=data["SimpleOperator"],
        Value=data["Value"] or None,
        DateValue=[datetime.fromisoformat(d) for d in data["DateValue"]] or None,
    )


class Activities:
    def __init__(
        self,
        store: Store,
        des: DataExtensions,
        tracking: Tracking,
        ftp_root: Path,
        safehouse: Path,
        types: Any,
        file_transfers: dict[str, str] | None = None,
    ) -> None:
        self.store, self.des, self.tracking, self.types = store, des, tracking, types
        self.export_dir = ftp_root / "Export"
        self.safehouse = safehouse
        safehouse.mkdir(parents=True, exist_ok=True)
        self.file_transfers = (
            file_transfers if file_transfers is not None else {"NTO_Safehouse_To_Export": "*"}
        )
        self.fail_half_way = 0  # injected: the next query activities fail after writing half their rows

    # -- definitions ----------------------------------------------------------------------------
    def save(self, type_name: str, obj: Any, kind: str) -> dict[str, Any]:
        key = obj.CustomerKey
        if not key:
            raise ActivityError(f"{type_name} needs a CustomerKey", 310001)
        existing = self.store.get(type_name, key)
        if kind == "Create" and existing is not None:
            raise ActivityError(f"a {type_name} with CustomerKey {key} already exists", 1)
        if kind == "Update" and existing is None:
            raise ActivityError(f"{type_name} {key} not found", 310002)
        body = dict(existing or {})
        body.update({"CustomerKey": key, "Name": obj.Name or body.get("Name") or key})
        if type_name == "QueryDefinition":
            for name in ("QueryText", "TargetType", "TargetUpdateType", "Description"):
                if getattr(obj, name, None) is not None:
                    body[name] = getattr(obj, name)
            if obj.DataExtensionTarget is not None:
                body["DataExtensionTarget.CustomerKey"] = obj.DataExtensionTarget.CustomerKey
                body["DataExtensionTarget.Name"] = obj.DataExtensionTarget.Name
            if body.get("TargetUpdateType", "Overwrite") not in TARGET_UPDATE_TYPES:
                raise ActivityError(f"TargetUpdateType must be one of {', '.join(TARGET_UPDATE_TYPES)}")
            self._target(body)
        elif type_name == "FilterDefinition":
            if obj.DataSource is not None:
                body["DataSource.CustomerKey"] = obj.DataSource.CustomerKey
            if obj.DataFilter is not None:
                body["DataFilter"] = json.dumps(filter_to_json(obj.DataFilter))
            if self.des.get(body.get("DataSource.CustomerKey")) is None:
                raise ActivityError("FilterDefinition DataSource must be an existing data extension", 373009)
            if not body.get("DataFilter"):
                raise ActivityError("FilterDefinition needs a DataFilter", 373009)
        elif type_name == "FilterActivity":
            for name in ("FilterDefinitionID", "SourceObjectID", "DestinationObjectID", "DestinationTypeID"):
                if getattr(obj, name, None) is not None:
                    body[name] = getattr(obj, name)
        elif type_name == "EmailSendDefinition":
            body["EmailSubject"] = obj.EmailSubject or body.get("EmailSubject")
            lists = list(obj.SendDefinitionList or [])
            if lists:
                body["CustomObjectID"] = lists[0].CustomObjectID
        if existing is None:
            body["ObjectID"] = self.store.put(type_name, body)
        else:
            self.store.replace(type_name, existing["ObjectID"], body)
        return body

    def _target(self, body: dict[str, Any]) -> dict[str, Any]:
        de = self.des.get(body.get("DataExtensionTarget.CustomerKey"), body.get("DataExtensionTarget.Name"))
        if de is None:
            raise ActivityError("the query's target data extension does not exist", 310002)
        return de

    # -- query activity -------------------------------------------------------------------------
    def run_query(self, key: str) -> tuple[int, str]:
        definition = self.store.get("QueryDefinition", key)
        if definition is None:
            raise ActivityError(f"QueryDefinition {key} not found", 310002)
        target = self._target(definition)
        server_now = mce_now()
        sql = self._translate(str(definition.get("QueryText") or ""), server_now)
        with self.store.connection() as con:
            now = lit(server_now.isoformat(sep=" "))
            for view, body in DATA_VIEWS.items():
                con.execute(f"CREATE OR REPLACE TEMP VIEW {q(view)} AS {body.replace('$now', now)}")
            for de in self.store.find("DataExtension"):
                con.execute(f"CREATE OR REPLACE TEMP VIEW {q(de['Name'])} AS SELECT * FROM {table_name(de)}")
            try:
                cursor = con.execute(sql)
            except Exception as exc:
                raise ActivityError(
                    f"An error occurred while running the query: {str(exc).splitlines()[0]}"
                ) from None
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
        names = {f.name.lower() for f in fields_of(target)}
        unknown = [c for c in columns if c.lower() not in names]
        if unknown:
            raise ActivityError(
                f"The query's column {unknown[0]} does not exist in the target data extension "
                f"{target['Name']}",
                310007,
            )
        update = definition.get("TargetUpdateType") or "Overwrite"
        mode = TARGET_UPDATE_TYPES[update]
        if update == "Update" and not any(f.is_primary_key for f in fields_of(target)):
            raise ActivityError("TargetUpdateType Update needs a primary key on the target data extension")
        records = [{c: _text(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        if self.fail_half_way > 0:
            self.fail_half_way -= 1
            half = records[: len(records) // 2]
            self.des.write_rows(target, half, mode, replace_all=update == "Overwrite")  # type: ignore[arg-type]
            raise ActivityError(
                f"The query failed after writing {len(half)} of {len(records)} rows to "
                f"{target['Name']}: the target is half-written",
                2,
            )
        try:
            self.des.write_rows(target, records, mode, replace_all=update == "Overwrite", all_or_nothing=True)  # type: ignore[arg-type]
        except RowsRefused as exc:
            raise ActivityError(
                f"The query's rows could not be written to {target['Name']}: {exc}; nothing was written",
                310007,
            ) from None
        return len(records), f"{len(records)} rows written to {target['Name']} ({update})"

    @staticmethod
    def _translate(text: str, server_now: datetime) -> str:
        """T-SQL to DuckDB. The clock functions read MCE's server clock, as the data views do:
        GETDATE(), SYSDATETIME() and CURRENT_TIMESTAMP give server time (CST, naive),
        GETUTCDATE() and SYSUTCDATETIME() UTC; DuckDB's own would give the machine's time."""
        try:
            statements = [s for s in sqlglot.parse(text, read="tsql") if s is not None]
        except sqlglot.errors.ParseError as exc:
            first = exc.errors[0] if exc.errors else {}
            raise ActivityError(
                f"An error occurred while checking the query syntax. Errors: {first.get('description', exc)} "
                f"near '{first.get('highlight', '')}' at line {first.get('line', '?')}",
                310007,
            ) from None
        if len(statements) != 1 or not isinstance(statements[0], exp.Query):
            raise ActivityError("Only one SELECT statement is supported by query activities", 310007)
        utc_now = server_now.replace(tzinfo=MCE_TIMEZONE).astimezone(UTC).replace(tzinfo=None)

        def clock(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.CurrentTimestamp):
                return exp.cast(exp.Literal.string(server_now.isoformat(sep=" ")), "TIMESTAMP")
            if (
                isinstance(node, exp.Anonymous)
                and str(node.this).upper() in UTC_CLOCKS
                and not node.expressions
            ):
                return exp.cast(exp.Literal.string(utc_now.isoformat(sep=" ")), "TIMESTAMP")
            return node

        return statements[0].transform(clock).sql(dialect="duckdb")

    # -- filter activity ------------------------------------------------------------------------
    def run_filter(self, key: str) -> tuple[int, str]:
        activity = self.store.get("FilterActivity", key)
        if activity is None:
            raise ActivityError(f"FilterActivity {key} not found", 373000)
        definition = next(
            iter(self.store.find("FilterDefinition", "object_id = ?", [activity.get("FilterDefinitionID")])),
            None,
        )
        if definition is None:
            raise ActivityError(
                "the FilterActivity's FilterDefinitionID does not name a FilterDefinition", 373009
            )
        source = self.des.get(definition["DataSource.CustomerKey"])
        dest = next(
            iter(self.store.find("DataExtension", "object_id = ?", [activity.get("DestinationObjectID")])),
            None,
        )
        if source is None or dest is None:
            raise ActivityError("the filter's source or destination data extension does not exist", 373009)
        source_fields = {f.name.lower(): f for f in fields_of(source)}
        dest_fields = fields_of(dest)
        missing = [f.name for f in dest_fields if f.name.lower() not in source_fields]
        if missing:
            raise ActivityError(f"destination field {missing[0]} is not in the source data extension", 373009)
        part = filter_from_json(self.types, json.loads(definition["DataFilter"]))

        def resolve(name: str) -> tuple[str, FieldDef | None]:
            f = source_fields.get(name.lower())
            if f is None:
                raise ActivityError(f"filter property {name} is not a field of {source['Name']}", 373009)
            return q(f.name), f

        where, params = compile_filter(part, resolve)
        columns = ", ".join(q(f.name) for f in dest_fields)
        source_columns = ", ".join(q(source_fields[f.name.lower()].name) for f in dest_fields)
        with self.store.transaction() as con:
            con.execute(f"DELETE FROM {table_name(dest)}")
            con.execute(
                f"INSERT INTO {table_name(dest)} ({columns}) SELECT {source_columns} FROM {table_name(source)} "
                f"WHERE {where}",
                params,
            )
            row = con.execute(f"SELECT count(*) FROM {table_name(dest)}").fetchone()
        count = int(row[0]) if row else 0
        return count, f"{count} rows in {dest['Name']}"

    # -- sends ----------------------------------------------------------------------------------
    def start_send(self, key: str, *, sent_at: datetime | None = None, seed: int = 1) -> tuple[int, int]:
        definition = self.store.get("EmailSendDefinition", key)
        if definition is None:
            raise ActivityError(f"EmailSendDefinition {key} not found", 42000)
        de = next(
            iter(self.store.find("DataExtension", "object_id = ?", [definition.get("CustomObjectID")])), None
        )
        if de is None:
            raise ActivityError("the send's SendDefinitionList does not name a data extension", 42000)
        try:
            return self.tracking.send(
                de,
                definition_key=key,
                subject=definition.get("EmailSubject") or "",
                sent_at=sent_at or mce_now(),
                seed=seed,
            )
        except ValueError as exc:
            raise ActivityError(str(exc), 42000) from None

    # -- extracts and transfers -----------------------------------------------------------------
    def extract(self, extract_id: str, parameters: dict[str, str]) -> str:
        name = parameters.get("OutputFileName") or ""
        if not name or "/" in name or ".." in name:
            raise ActivityError("OutputFileName must be a file name")
        if extract_id == DE_EXTRACT:
            self._extract_de(parameters, self.safehouse / name)
        elif extract_id == TRACKING_EXTRACT:
            self._extract_tracking(parameters, self.safehouse / name)
        else:
            raise ActivityError(f"extract type {extract_id} is not supported")
        return name

    def _extract_de(self, parameters: dict[str, str], path: Path) -> None:
        de = self.des.get(parameters.get("DECustomerKey"))
        if de is None:
            raise ActivityError(f"data extension {parameters.get('DECustomerKey')} does not exist", 310002)
        fields = fields_of(de)
        select = ", ".join(render_sql(f, q(f.name)) for f in fields)
        with self.store.connection() as con:
            rows = con.execute(f"SELECT {select} FROM {table_name(de)} ORDER BY rowid").fetchall()
        headers = parameters.get("HasColumnHeaders", "true").lower() == "true"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            if headers:
                writer.writerow([f.name for f in fields])
            writer.writerows(rows)

    def _extract_tracking(self, parameters: dict[str, str], path: Path) -> None:
        start = _parse_date(parameters.get("StartDate"))
        end = _parse_date(parameters.get("EndDate"))
        now = mce_now()
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for flag, (file_name, event_type, extra) in TRACKING_FILES.items():
                if parameters.get(flag, "false").lower() != "true":
                    continue
                with self.store.connection() as con:
                    rows = con.execute(
                        "SELECT 0, send_id, subscriber_key, email, 0, 0, event_date, event_type, batch_id, url, "
                        "bounce_category, smtp_code, smtp_reason FROM tracking_events WHERE event_type = ? "
                        "AND event_date BETWEEN ? AND ? AND visible_at <= ? ORDER BY event_date, subscriber_key",
                        [event_type, start, end, now],
                    ).fetchall()
                out = io.StringIO()
                writer = csv.writer(out, lineterminator="\r\n")
                writer.writerow(TRACKING_COLUMNS + extra)
                for r in rows:
                    base = [
                        r[0],
                        r[1],
                        r[2],
                        r[3],
                        r[4],
                        r[5],
                        r[6].strftime(rules.RENDER_DATE_FORMAT),
                        _event_type(r[7], r[10]),
                        r[8],
                    ]
                    tail = {"URL": [r[9]], "BounceCategory": [r[10], r[11], r[12]]}
                    writer.writerow(
                        base + (tail["URL"] if extra == ["URL"] else tail["BounceCategory"] if extra else [])
                    )
                archive.writestr(file_name, out.getvalue())
            if parameters.get("ExtractSendJobs", "false").lower() == "true":
                archive.writestr("SendJobs.csv", self._send_jobs(start, end))

    def _send_jobs(self, start: datetime, end: datetime) -> str:
        """The sends made in the window, as the _Job data view describes them (one definition of
        a send job in the local MCE); what it has no notion of is empty."""
        job = DATA_VIEWS["_Job"].replace("$now", lit(mce_now().isoformat(sep=" ")))
        with self.store.connection() as con:
            sends = con.execute(
                f"SELECT JobID, DeliveredTime, EmailSubject, EmailName, EmailSendDefinition FROM ({job}) "
                "WHERE DeliveredTime BETWEEN ? AND ? ORDER BY JobID",
                [start, end],
            ).fetchall()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(SEND_JOB_COLUMNS)
        for send_id, sent_at, subject, name, definition in sends:
            at = sent_at.strftime(rules.RENDER_DATE_FORMAT)
            writer.writerow(
                [0, send_id, "", "", at, at, subject, name, "", definition or "", "Complete", "", "True", ""]
            )
        return out.getvalue()

    def transfer(self, key: str) -> list[str]:
        pattern = self.file_transfers.get(key)
        if pattern is None:
            raise ActivityError(f"FileTransferActivity {key} not found", 2)
        self.export_dir.mkdir(parents=True, exist_ok=True)
        moved = []
        for path in sorted(self.safehouse.iterdir()):
            if path.is_file() and fnmatch.fnmatch(path.name, pattern):
                part = self.export_dir / (path.name + ".part")
                shutil.copyfile(path, part)
                part.replace(self.export_dir / path.name)
                path.unlink()
                moved.append(path.name)
        return moved


def _event_type(event_type: str, bounce_category: str | None) -> str:
    if event_type != "Bounce":
        return event_type
    return {"Hard bounce": "HardBounce", "Soft bounce": "SoftBounce"}.get(
        bounce_category or "", "OtherBounce"
    )


def _parse_date(text: str | None) -> datetime:
    if not text:
        raise ActivityError("StartDate and EndDate are required")
    for fmt in rules.DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ActivityError(f"{text} is not a valid date")
