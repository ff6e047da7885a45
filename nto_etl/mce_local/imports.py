"""Import definitions that really run: a file in the SFTP `/Import` folder into a data extension.

Started by Perform, an import is queued (New), runs on a worker (Processing) and ends
Completed or Error; ImportResultsSummary reports its counts. Rows are parsed by
DuckDB's CSV reader (malformed lines are counted as errors, not fatal), mapped to
fields, and applied by the row engine in one transaction: an import that may not
keep errors (AllowErrors false) changes nothing.
"""

from __future__ import annotations

import csv
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nto_etl.mce_local.clock import mce_now
from nto_etl.mce_local.dataext import DataExtensions, fields_of, table_name
from nto_etl.mce_local.fieldtypes import FieldDef, lit, q
from nto_etl.mce_local.rows import Mode, apply_rows, presence
from nto_etl.mce_local.store import Store

log = logging.getLogger(__name__)

ENHANCED_FTP = "ExactTarget Enhanced FTP"
UPDATE_MODES: dict[str, Mode] = {
    "AddAndUpdate": "upsert",
    "Merge": "upsert",
    "AddAndDoNotUpdate": "insert",
    "UpdateButDoNotAdd": "update",
    "Overwrite": "upsert",
}
MAPPINGS = ("InferFromColumnHeadings", "MapByOrdinal", "ManualMap")


class ImportDefinitionError(ValueError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class ImportRunError(Exception):
    """Ends a run in Error with this message."""


class Imports:
    def __init__(self, store: Store, des: DataExtensions, ftp_root: Path) -> None:
        self.store = store
        self.des = des
        self.import_dir = ftp_root / "Import"
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mce-import")
        # Injected faults: the next `stuck` runs stay Processing until release_stuck(); the next
        # `refuse_rows` rows of the next import are refused as MCE refuses rows it cannot take.
        self.stuck = 0
        self.refuse_rows = 0
        self._parked: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=False)

    # -- definitions ----------------------------------------------------------------------------
    def _body(self, obj: Any, existing: dict[str, Any] | None = None) -> dict[str, Any]:
        body = dict(existing or {})
        for name in (
            "CustomerKey",
            "Name",
            "Description",
            "AllowErrors",
            "FieldMappingType",
            "FileSpec",
            "FileType",
            "UpdateType",
            "Delimiter",
            "HeaderLines",
            "ControlColumn",
        ):
            value = getattr(obj, name, None)
            if value is not None:
                body[name] = value
        if obj.DestinationObject is not None:
            body["DestinationObject.CustomerKey"] = obj.DestinationObject.CustomerKey
            body["DestinationObject.ObjectID"] = obj.DestinationObject.ObjectID
        if obj.RetrieveFileTransferLocation is not None:
            body["RetrieveFileTransferLocation.CustomerKey"] = obj.RetrieveFileTransferLocation.CustomerKey
        if obj.FieldMaps is not None:
            body["FieldMaps"] = [
                {
                    "SourceName": m.SourceName,
                    "SourceOrdinal": _ordinal(m),
                    "DestinationName": m.DestinationName,
                }
                for m in obj.FieldMaps.FieldMap
            ]
        self._validate(body)
        return body

    def _validate(self, body: dict[str, Any]) -> None:
        if not body.get("CustomerKey"):
            raise ImportDefinitionError("CustomerKey not specified", 43000)
        de = self._destination(body)
        if body.get("UpdateType", "AddAndUpdate") not in (*UPDATE_MODES, "ColumnBased"):
            raise ImportDefinitionError(f"UpdateType {body.get('UpdateType')} is not valid", 43060)
        if body.get("UpdateType") == "ColumnBased" and not body.get("ControlColumn"):
            raise ImportDefinitionError("a ColumnBased import needs a ControlColumn", 43060)
        mapping = body.get("FieldMappingType") or "InferFromColumnHeadings"
        if mapping not in MAPPINGS:
            raise ImportDefinitionError(f"FieldMappingType {mapping} is not valid", 43060)
        names = {f.name.lower() for f in fields_of(de)}
        if mapping == "ManualMap":
            maps = body.get("FieldMaps") or []
            if not maps:
                raise ImportDefinitionError("a ManualMap import needs FieldMaps", 43060)
            for m in maps:
                if str(m.get("DestinationName") or "").lower() not in names:
                    raise ImportDefinitionError(
                        f"FieldMap destination {m.get('DestinationName')} is not a field of {de['Name']}",
                        43060,
                    )
                if m.get("SourceName") is None and m.get("SourceOrdinal") is None:
                    raise ImportDefinitionError("a FieldMap needs SourceName or SourceOrdinal", 43060)
        location = body.get("RetrieveFileTransferLocation.CustomerKey")
        if location and location != ENHANCED_FTP:
            raise ImportDefinitionError(f"file transfer location {location} not found", 43010)
        spec = str(body.get("FileSpec") or "")
        if not spec or "/" in spec or "\\" in spec or ".." in spec:
            raise ImportDefinitionError("FileSpec must name a file in the Import folder", 43060)

    def _destination(self, body: dict[str, Any]) -> dict[str, Any]:
        key = body.get("DestinationObject.CustomerKey")
        de = self.des.get(key) if key else None
        if de is None:
            raise ImportDefinitionError(f"destination data extension {key!r} not found", 43010)
        return de

    def create(self, obj: Any) -> dict[str, Any]:
        if obj.CustomerKey and self.store.get("ImportDefinition", obj.CustomerKey):
            raise ImportDefinitionError(
                f"an import definition with CustomerKey {obj.CustomerKey} exists", 43030
            )
        body = self._body(obj)
        body.setdefault("UpdateType", "AddAndUpdate")
        body.setdefault("FieldMappingType", "InferFromColumnHeadings")
        body["ObjectID"] = self.store.put("ImportDefinition", body)
        return body

    def update(self, obj: Any) -> dict[str, Any]:
        existing = self.store.get("ImportDefinition", obj.CustomerKey or "")
        if existing is None:
            raise ImportDefinitionError(f"import definition {obj.CustomerKey!r} not found", 43010)
        body = self._body(obj, existing)
        self.store.replace("ImportDefinition", existing["ObjectID"], body)
        return body

    # -- runs -----------------------------------------------------------------------------------
    def start(self, customer_key: str) -> tuple[int, dict[str, Any]]:
        definition = self.store.get("ImportDefinition", customer_key)
        if definition is None:
            raise ImportDefinitionError(f"import definition {customer_key!r} not found", 43010)
        task_id = self.store.next_task_id()
        summary = {
            "ImportDefinitionCustomerKey": definition["CustomerKey"],
            "TaskResultID": task_id,
            "ImportStatus": "New",
            "ImportType": "Data Extensions",
            "DestinationID": definition.get("DestinationObject.CustomerKey"),
            "NumberSuccessful": 0,
            "NumberErrors": 0,
            "NumberDuplicated": 0,
            "NumberRestricted": 0,
            "TotalRows": 0,
        }
        summary_id = self.store.put("ImportResultsSummary", summary)
        self._worker.submit(self._run, summary_id, summary, definition)
        return task_id, definition

    def release_stuck(self) -> None:
        """Let the imports held by the `stuck` fault finish."""
        parked, self._parked = self._parked, []
        for args in parked:
            self._worker.submit(self._finish, *args)

    def _run(self, summary_id: str, summary: dict[str, Any], definition: dict[str, Any]) -> None:
        summary.update(ImportStatus="Processing", StartDate=mce_now().isoformat())
        self.store.replace("ImportResultsSummary", summary_id, summary)
        if self.stuck > 0:
            self.stuck -= 1
            self._parked.append((summary_id, summary, definition))
            return
        self._finish(summary_id, summary, definition)

    def _finish(self, summary_id: str, summary: dict[str, Any], definition: dict[str, Any]) -> None:
        # The store is held from the import to its summary: a request waiting for the store
        # while the rows are written then sees the run ended, not still Processing.
        with self.store.connection():
            try:
                counts = self._execute(definition)
                summary.update(counts, ImportStatus="Completed")
            except ImportRunError as exc:
                summary.update(ImportStatus="Error", Message=str(exc))
                if hasattr(exc, "counts"):
                    summary.update(exc.counts)
            except Exception as exc:
                log.exception("import %s failed", definition["CustomerKey"])
                summary.update(ImportStatus="Error", Message=f"unexpected error: {exc}")
            summary["EndDate"] = mce_now().isoformat()
            self.store.replace("ImportResultsSummary", summary_id, summary)

    def _file(self, definition: dict[str, Any]) -> Path:
        now = mce_now()
        name = (
            str(definition["FileSpec"])
            .replace("%%Year%%", f"{now:%Y}")
            .replace("%%Month%%", f"{now:%m}")
            .replace("%%Day%%", f"{now:%d}")
        )
        path = self.import_dir / name
        if not path.is_file():
            raise ImportRunError(f"file {name} not found in the Import folder")
        return path

    def _execute(self, definition: dict[str, Any]) -> dict[str, int]:
        de = self._destination(definition)
        fields = fields_of(de)
        path = self._file(definition)
        update_type = definition.get("UpdateType", "AddAndUpdate")
        if update_type == "ColumnBased":
            raise ImportRunError("ColumnBased imports are not supported by the local MCE")
        delimiter = "\t" if definition.get("FileType") == "TAB" else str(definition.get("Delimiter") or ",")
        header_lines = int(
            definition.get("HeaderLines", 1) if definition.get("HeaderLines") is not None else 1
        )
        headers = _first_row(path, delimiter)
        if not headers:
            raise ImportRunError(f"file {path.name} is empty")
        mapping = _map_columns(definition, headers if header_lines else [], len(headers), fields)
        if not mapping:
            raise ImportRunError(f"no column of {path.name} maps to a field of {de['Name']}")
        columns = "{" + ", ".join(f"{lit(f'c{i}')}: 'VARCHAR'" for i in range(len(headers))) + "}"
        with self.store.transaction() as con:
            con.execute(
                "DROP TABLE IF EXISTS __file; DROP TABLE IF EXISTS __rej; DROP TABLE IF EXISTS __scan"
            )
            con.execute(
                f"CREATE TEMP TABLE __file AS SELECT row_number() OVER () AS __ord, * FROM read_csv(?, "
                f"columns = {columns}, delim = ?, quote = '\"', escape = '\"', header = false, skip = ?, "
                "encoding = 'utf-8', strict_mode = true, store_rejects = true, rejects_table = '__rej', "
                "rejects_scan = '__scan', null_padding = false)",
                [str(path), delimiter, header_lines],
            )
            rejected = int(con.execute("SELECT count(DISTINCT line) FROM __rej").fetchone()[0])  # type: ignore[index]
            selects = ["__ord"]
            for i, f in enumerate(fields):
                source = mapping.get(f.name)
                selects.append(
                    f"NULLIF(c{source}, '') AS {q(f.name)}"
                    if source is not None
                    else f"NULL::VARCHAR AS {q(f.name)}"
                )
                selects.append(f"{'TRUE' if source is not None else 'FALSE'} AS {presence(i)}")
            con.execute(f"CREATE OR REPLACE TEMP TABLE __inc AS SELECT {', '.join(selects)} FROM __file")
            if self.refuse_rows:
                keys = [f for f in fields if f.is_required or f.is_primary_key][:1]
                if keys:  # a required value lost: MCE refuses the row
                    con.execute(
                        f"UPDATE __inc SET {q(keys[0].name)} = NULL WHERE __ord <= ?", [self.refuse_rows]
                    )
                self.refuse_rows = 0
            if update_type == "Overwrite":
                con.execute(f"DELETE FROM {table_name(de)}")
            apply_rows(con, table_name(de), fields, "__inc", UPDATE_MODES[update_type])
            tally = dict(con.execute("SELECT status, count(*) FROM __outcome GROUP BY status").fetchall())
            counts = {
                "TotalRows": sum(tally.values()) + rejected,
                "NumberSuccessful": tally.get("insert", 0) + tally.get("update", 0),
                "NumberErrors": tally.get("error", 0) + rejected,
                "NumberDuplicated": tally.get("duplicate", 0) + tally.get("exists", 0),
                "NumberRestricted": tally.get("missing", 0),
            }
            if counts["NumberErrors"] and not definition.get("AllowErrors"):
                error = ImportRunError(
                    f"{counts['NumberErrors']} rows in error and AllowErrors is false: nothing was imported"
                )
                error.counts = {**counts, "NumberSuccessful": 0}  # type: ignore[attr-defined]
                raise error  # the transaction rolls back: nothing is imported
        return counts


def _ordinal(field_map: Any) -> int | None:
    """SourceOrdinal of a FieldMap. The schema makes SourceName|SourceOrdinal a required choice, and
    zeep parses a falsy choice value as absent: when neither came through, the ordinal was 0."""
    if field_map.SourceOrdinal is not None:
        return int(field_map.SourceOrdinal)
    return 0 if not field_map.SourceName else None


def _first_row(path: Path, delimiter: str) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        return next(csv.reader(handle, delimiter=delimiter), [])


def _map_columns(
    definition: dict[str, Any], headers: list[str], width: int, fields: list[FieldDef]
) -> dict[str, int]:
    """DE field name -> 0-based file column, by the definition's FieldMappingType."""
    mapping_type = definition.get("FieldMappingType") or "InferFromColumnHeadings"
    by_name = {f.name.lower(): f.name for f in fields}
    if mapping_type == "MapByOrdinal":
        ordered = sorted(fields, key=lambda f: f.ordinal)
        return {f.name: i for i, f in enumerate(ordered) if i < width}
    if mapping_type == "ManualMap":
        result = {}
        lowered = [h.strip().lower() for h in headers]
        for m in definition.get("FieldMaps") or []:
            dest = by_name[str(m["DestinationName"]).lower()]
            if m.get("SourceOrdinal") is not None:
                if int(m["SourceOrdinal"]) < width:
                    result[dest] = int(m["SourceOrdinal"])
            elif str(m["SourceName"]).lower() in lowered:
                result[dest] = lowered.index(str(m["SourceName"]).lower())
        return result
    return {by_name[h.strip().lower()]: i for i, h in enumerate(headers) if h.strip().lower() in by_name}
