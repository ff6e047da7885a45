"""Data extensions in the local MCE: definitions, field rules, row writes and row reads.

Definitions are checked as MCE checks them (field types, lengths, precision/scale,
sendable relationship); rows go through the SQL row engine so SOAP writes and
imports obey the same type and key rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from nto_etl.mce import rules
from nto_etl.mce.fields import duckdb_type
from nto_etl.mce_local.clock import mce_now
from nto_etl.mce_local.fieldtypes import FieldDef, q, render_sql
from nto_etl.mce_local.filters import FilterError, compile_filter
from nto_etl.mce_local.rows import Mode, apply_rows, delete_rows, presence
from nto_etl.mce_local.store import Store

SUBSCRIBER_RELATIONSHIPS = ("Subscriber Key", "Email Address", "_SubscriberKey", "Subscriber ID")


class DefinitionError(ValueError):
    def __init__(self, message: str, code: int = 310007) -> None:
        super().__init__(message)
        self.code = code


class RowsRefused(Exception):
    """Some rows of an all-or-nothing write were refused; nothing was written."""

    def __init__(self, outcomes: list[RowOutcome]) -> None:
        self.outcomes = outcomes
        first = next(o for o in outcomes if o.status == "error")
        refused = sum(1 for o in outcomes if o.status == "error")
        super().__init__(
            f"{refused} of {len(outcomes)} rows refused, first: {first.message} (code {first.code})"
        )


@dataclass
class RowOutcome:
    """The fate of one DataExtensionObject in a SOAP write."""

    status: str  # insert | update | deleted | error | exists | missing | duplicate
    code: int | None = None
    message: str = ""
    field_errors: list[tuple[str, int, str]] = field(default_factory=list)


def table_name(de: dict[str, Any]) -> str:
    return q("de_" + de["ObjectID"].replace("-", ""))


def fields_of(de: dict[str, Any]) -> list[FieldDef]:
    return [FieldDef(**f) for f in de["Fields"]]


def _field_from(obj: Any, ordinal: int) -> FieldDef:
    if not obj.Name:
        raise DefinitionError("every field needs a Name")
    ftype = str(obj.FieldType or "Text")
    if ftype not in ("Text", "Number", "Decimal", "Date", "Boolean", "EmailAddress", "Phone", "Locale"):
        raise DefinitionError(f"field {obj.Name}: FieldType {ftype} is not supported for data extensions")
    max_length = obj.MaxLength
    if ftype == "Text" and max_length is not None and not 0 < max_length <= rules.TEXT_MAX_LENGTH:
        raise DefinitionError(f"field {obj.Name}: MaxLength must be between 1 and {rules.TEXT_MAX_LENGTH}")
    if ftype == "Decimal":
        p, s = obj.Precision, obj.Scale
        if p is None or s is None:
            raise DefinitionError(f"field {obj.Name}: a Decimal field needs Precision and Scale")
        if not (0 < p <= rules.DECIMAL_MAX_PRECISION and 0 <= s <= p):
            raise DefinitionError(f"field {obj.Name}: Precision {p} / Scale {s} out of range")
    is_pk = bool(obj.IsPrimaryKey)
    return FieldDef(
        name=str(obj.Name),
        field_type=ftype,
        max_length=max_length,
        precision=obj.Precision if ftype == "Decimal" else None,
        scale=obj.Scale if ftype == "Decimal" else None,
        is_primary_key=is_pk,
        is_required=bool(obj.IsRequired) or is_pk,
        default_value=obj.DefaultValue if obj.DefaultValue not in (None, "") else None,
        description=obj.Description,
        ordinal=ordinal,
    )


class DataExtensions:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str | None, name: str | None = None) -> dict[str, Any] | None:
        if key:
            return self.store.get("DataExtension", key)
        if name:
            found = [d for d in self.store.find("DataExtension") if d["Name"].lower() == name.lower()]
            return found[0] if found else None
        return None

    # -- definitions ----------------------------------------------------------------------------
    def create(self, obj: Any) -> dict[str, Any]:
        if not obj.Name:
            raise DefinitionError("a data extension needs a Name", 310001)
        key = obj.CustomerKey or obj.Name
        if self.get(key) is not None or self.get(None, obj.Name) is not None:
            raise DefinitionError(f"a data extension with the CustomerKey or Name {key!r} already exists", 1)
        raw = list(obj.Fields.Field) if obj.Fields else []
        if not raw:
            raise DefinitionError("a data extension needs at least one field")
        fields = [_field_from(f, i) for i, f in enumerate(raw)]
        names = [f.name.lower() for f in fields]
        if len(set(names)) != len(names):
            raise DefinitionError("field names must be unique within a data extension")
        body: dict[str, Any] = {
            "CustomerKey": key,
            "Name": obj.Name,
            "Description": obj.Description,
            "IsSendable": bool(obj.IsSendable),
            "CreatedDate": mce_now().isoformat(),
            "ModifiedDate": mce_now().isoformat(),
            "Fields": [f.to_json() for f in fields],
        }
        if obj.IsSendable:
            send_field = obj.SendableDataExtensionField.Name if obj.SendableDataExtensionField else None
            relation = obj.SendableSubscriberField.Name if obj.SendableSubscriberField else None
            if not send_field or send_field.lower() not in names:
                raise DefinitionError(
                    "a sendable data extension needs SendableDataExtensionField naming one of its fields"
                )
            if relation not in SUBSCRIBER_RELATIONSHIPS:
                raise DefinitionError(
                    f"SendableSubscriberField must be one of {', '.join(SUBSCRIBER_RELATIONSHIPS)}"
                )
            body["SendableDataExtensionField"] = send_field
            body["SendableSubscriberField"] = relation
        object_id = self.store.put("DataExtension", body)
        body["ObjectID"] = object_id
        columns = ", ".join(f"{q(f.name)} {duckdb_type(f)}" for f in fields)
        with self.store.connection() as con:
            con.execute(f"CREATE TABLE {table_name(body)} ({columns})")
        self._put_field_objects(body, fields)
        return body

    def _put_field_objects(self, de: dict[str, Any], fields: Sequence[FieldDef]) -> None:
        for old in self.store.find(
            "DataExtensionField",
            "json_extract_string(body, '$.\"DataExtension.CustomerKey\"') = ?",
            [de["CustomerKey"]],
        ):
            self.store.remove("DataExtensionField", old["ObjectID"])
        for f in fields:
            self.store.put(
                "DataExtensionField",
                {
                    "Name": f.name,
                    "FieldType": f.field_type,
                    "MaxLength": f.length_limit if f.field_type != "Decimal" else None,
                    "Precision": f.precision,
                    "Scale": f.scale,
                    "IsPrimaryKey": f.is_primary_key,
                    "IsRequired": f.is_required,
                    "DefaultValue": f.default_value,
                    "Ordinal": f.ordinal,
                    "Description": f.description,
                    "CustomerKey": f"{de['CustomerKey']}.{f.name}",
                    "DataExtension.CustomerKey": de["CustomerKey"],
                },
            )

    def update(self, obj: Any) -> dict[str, Any]:
        de = self.get(obj.CustomerKey, obj.Name)
        if de is None:
            raise DefinitionError(f"data extension {obj.CustomerKey or obj.Name!r} does not exist", 310001)
        fields = fields_of(de)
        by_name = {f.name.lower(): f for f in fields}
        added: list[FieldDef] = []
        for raw in list(obj.Fields.Field) if obj.Fields else []:
            existing = by_name.get(str(raw.Name).lower())
            if existing is None:
                new = _field_from(raw, len(fields) + len(added))
                if new.is_primary_key:
                    raise DefinitionError(
                        f"field {new.name}: a primary key cannot be added to an existing data extension"
                    )
                if new.is_required and new.default_value is None and self.row_count(de):
                    raise DefinitionError(
                        f"field {new.name}: a required field needs a DefaultValue when the data extension has rows"
                    )
                added.append(new)
                continue
            if raw.FieldType and raw.FieldType != existing.field_type:
                raise DefinitionError(
                    f"field {existing.name}: the FieldType cannot change from {existing.field_type} to {raw.FieldType}"
                )
            if raw.MaxLength and existing.length_limit and raw.MaxLength < existing.length_limit:
                raise DefinitionError(
                    f"field {existing.name}: MaxLength cannot shrink from {existing.length_limit} to {raw.MaxLength}"
                )
            if raw.MaxLength and raw.MaxLength != existing.max_length:
                fields[fields.index(existing)] = FieldDef(
                    **{**existing.to_json(), "max_length": raw.MaxLength}
                )
        with self.store.transaction() as con:
            for f in added:
                con.execute(f"ALTER TABLE {table_name(de)} ADD COLUMN {q(f.name)} {duckdb_type(f)}")
                if f.default_value is not None:
                    con.execute(f"UPDATE {table_name(de)} SET {q(f.name)} = ?", [f.default_value])
        fields += added
        de.update(Fields=[f.to_json() for f in fields], ModifiedDate=mce_now().isoformat())
        if obj.Description is not None:
            de["Description"] = obj.Description
        self.store.replace("DataExtension", de["ObjectID"], de)
        self._put_field_objects(de, fields)
        return de

    def delete(self, obj: Any) -> None:
        de = self.get(obj.CustomerKey, obj.Name)
        if de is None:
            raise DefinitionError(f"data extension {obj.CustomerKey or obj.Name!r} does not exist", 310002)
        with self.store.connection() as con:
            con.execute(f"DROP TABLE IF EXISTS {table_name(de)}")
        self._put_field_objects(de, [])
        self.store.remove("DataExtension", de["ObjectID"])

    def row_count(self, de: dict[str, Any]) -> int:
        with self.store.connection() as con:
            row = con.execute(f"SELECT count(*) FROM {table_name(de)}").fetchone()
        return int(row[0]) if row else 0

    # -- rows -----------------------------------------------------------------------------------
    def write_rows(
        self,
        de: dict[str, Any],
        rows: Sequence[dict[str, str | None]],
        mode: Mode,
        *,
        replace_all: bool = False,
        all_or_nothing: bool = False,
    ) -> list[RowOutcome]:
        """Apply rows (property name -> text); one outcome per row, in order.

        `replace_all` empties the DE first; `all_or_nothing` writes nothing if any row is
        refused (raising RowsRefused), as a query activity's single INSERT does.
        """
        fields = fields_of(de)
        canonical = {f.name.lower(): f.name for f in fields}
        outcomes: list[RowOutcome | None] = [None] * len(rows)
        records = []
        for i, row in enumerate(rows):
            unknown = [n for n in row if n.lower() not in canonical]
            if unknown:
                outcomes[i] = RowOutcome(
                    "error",
                    310007,
                    f"The field {unknown[0]} does not exist in data extension {de['Name']}",
                    [(unknown[0], 310007, "no such field")],
                )
                continue
            given = {canonical[n.lower()]: (v if v not in ("", None) else None) for n, v in row.items()}
            record: dict[str, Any] = {"__ord": i}
            for j, f in enumerate(fields):
                record[f.name] = given.get(f.name)
                record[presence(j).strip('"')] = f.name in given
            records.append(record)
        with self.store.transaction() as con:
            if replace_all:
                con.execute(f"DELETE FROM {table_name(de)}")
            if records:
                frame = pd.DataFrame.from_records(records)
                for f in fields:
                    frame[f.name] = frame[f.name].astype("string")
                con.register("__rows", frame)
                con.execute("CREATE OR REPLACE TEMP TABLE __inc AS SELECT * FROM __rows")
                con.unregister("__rows")
                apply_rows(con, table_name(de), fields, "__inc", mode)
                status = dict(con.execute("SELECT __ord, status FROM __outcome").fetchall())
                problems: dict[int, list[tuple[str, int, str]]] = {}
                for ordinal, fname, code, message in con.execute("SELECT * FROM __problems").fetchall():
                    problems.setdefault(ordinal, []).append((fname, code, message))
                for ordinal, state in status.items():
                    outcomes[ordinal] = _row_outcome(state, problems.get(ordinal, []), mode)
            final = [o or RowOutcome("error", 2, "row not processed") for o in outcomes]
            if all_or_nothing and any(o.status == "error" for o in final):
                raise RowsRefused(final)  # the transaction rolls back: nothing written
        return final

    def delete_rows(self, de: dict[str, Any], keys: Sequence[dict[str, str | None]]) -> list[RowOutcome]:
        fields = fields_of(de)
        pk = [f for f in fields if f.is_primary_key]
        if not pk:
            return [
                RowOutcome(
                    "error", 310001, "rows can only be deleted from a data extension with a primary key"
                )
            ] * len(keys)
        records = []
        outcomes: list[RowOutcome | None] = [None] * len(keys)
        for i, key in enumerate(keys):
            lowered = {k.lower(): v for k, v in key.items()}
            if any(lowered.get(f.name.lower()) in (None, "") for f in pk):
                outcomes[i] = RowOutcome("error", 310001, "every primary key field must be given in Keys")
                continue
            records.append({"__ord": i, **{f.name: lowered[f.name.lower()] for f in pk}})
        if records:
            frame = pd.DataFrame.from_records(records)
            with self.store.transaction() as con:
                con.register("__keys", frame)
                con.execute("CREATE OR REPLACE TEMP TABLE __inc AS SELECT * FROM __keys")
                con.unregister("__keys")
                delete_rows(con, table_name(de), pk, "__inc")
                for ordinal, state in con.execute("SELECT __ord, status FROM __outcome").fetchall():
                    outcomes[ordinal] = (
                        RowOutcome("deleted")
                        if state == "deleted"
                        else RowOutcome("missing", 310002, "no row with this primary key")
                    )
        return [o or RowOutcome("error", 2, "row not processed") for o in outcomes]

    def select_rows(
        self, de: dict[str, Any], properties: Sequence[str], filter_part: Any | None
    ) -> list[tuple[Any, ...]]:
        """Rendered rows for Retrieve; FilterError/KeyError name what is wrong."""
        by_name = {f.name.lower(): f for f in fields_of(de)}
        missing = [p for p in properties if p.lower() not in by_name]
        if missing:
            raise KeyError(", ".join(missing))
        select = ", ".join(render_sql(by_name[p.lower()], q(by_name[p.lower()].name)) for p in properties)
        where, params = "TRUE", dict[str, Any]()
        if filter_part is not None:

            def resolve(name: str) -> tuple[str, FieldDef | None]:
                f = by_name.get(name.lower())
                if f is None:
                    raise FilterError(f"the filter property {name} is not a field of {de['Name']}")
                return q(f.name), f

            where, params = compile_filter(filter_part, resolve, allow_like=False)
        with self.store.connection() as con:
            return con.execute(
                f"SELECT {select} FROM {table_name(de)} WHERE {where} ORDER BY rowid", params
            ).fetchall()


def _row_outcome(state: str, problems: list[tuple[str, int, str]], mode: Mode) -> RowOutcome:
    if state in ("insert", "update"):
        return RowOutcome(state)
    if state == "duplicate":
        if mode == "insert":
            return RowOutcome("error", 310003, "another row in this request has the same primary key")
        return RowOutcome("update")
    if state == "exists":
        return RowOutcome(
            "error", 310003, "Violation of PRIMARY KEY constraint: a row with this key already exists"
        )
    if state == "missing":
        return RowOutcome("error", 310004, "no row with this primary key to update")
    first = problems[0] if problems else ("", 310007, "invalid data")
    return RowOutcome("error", 310007, f"{first[2]}", problems)
