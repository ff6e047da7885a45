"""The one mapping from a pandera model to MCE data-extension fields and DuckDB columns.

Each column of a contract is declared with `mce_field`, which records the MCE field
type (and length, precision, scale, key) as column metadata and adds the checks MCE
itself applies, so a row MCE would refuse fails validation here first. `de_fields`,
`csv_columns` and `duckdb_columns` read that metadata back: the data extension, the
CSV written for import and the DuckDB table cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera import extensions
from pandera.engines.pandas_engine import DateTime as Timestamp

from nto_etl.mce import rules
from nto_etl.mce.fields import DEField, duckdb_type

TEXT_TYPES = ("Text", "EmailAddress", "Phone", "Locale")
__all__ = ["MceContract", "Timestamp", "de_fields", "duckdb_columns", "mce_field"]

SYNTAX_RULES = {"email": rules.EMAIL_PATTERN, "phone": rules.PHONE_PATTERN, "locale": rules.LOCALE_PATTERN}


@extensions.register_check_method(statistics=["rule"], supported_types=[pd.Series])
def mce_syntax(values: pd.Series, *, rule: str) -> pd.Series:
    """MCE's syntax rule for a typed text field; the check reads `mce_syntax(rule=email)` in rejects."""
    return values.str.fullmatch(SYNTAX_RULES[rule])


def mce_field(
    description: str,
    mce_type: str = "Text",
    *,
    max_length: int | None = None,
    precision: int | None = None,
    scale: int | None = None,
    primary_key: bool = False,
    required: bool = False,
    **checks: Any,
) -> Any:
    """A pandera Field carrying its MCE definition, with MCE's own value rules as checks."""
    if mce_type == "Decimal" and (precision is None or scale is None):
        raise ValueError(f"{description!r}: a Decimal field needs precision and scale")
    meta = {
        "type": mce_type,
        "max_length": max_length or rules.DEFAULT_MAX_LENGTH.get(mce_type),
        "precision": precision,
        "scale": scale,
        "primary_key": primary_key,
    }
    kwargs: dict[str, Any] = {
        "description": description,
        "nullable": not (required or primary_key),
        "metadata": {"mce": meta},
    }
    if mce_type in TEXT_TYPES:
        kwargs["str_length"] = {"max_value": meta["max_length"]}
    if mce_type in ("EmailAddress", "Phone", "Locale"):
        kwargs["mce_syntax"] = {
            "rule": {"EmailAddress": "email", "Phone": "phone", "Locale": "locale"}[mce_type]
        }
    elif mce_type == "Number":
        kwargs["in_range"] = {"min_value": rules.NUMBER_MIN, "max_value": rules.NUMBER_MAX}
    elif mce_type == "Decimal":
        assert precision is not None and scale is not None
        bound = 10 ** (precision - scale)
        kwargs["gt"], kwargs["lt"] = -bound, bound
    elif mce_type == "Date":
        # Timestamps in exports are ISO 8601 ("2026-11-27 09:30:00", "2026-11-27T09:30:00", "2026-11-27").
        kwargs["dtype_kwargs"] = {"to_datetime_kwargs": {"format": "ISO8601"}}
    kwargs.update(checks)
    return pa.Field(**kwargs)


class MceContract(pa.DataFrameModel):
    """What every contract is: strict (no column the DE lacks) and coercing (CSV text in, typed out).

    Subclasses add their columns, and a Config with only their `metadata` (pandera merges it
    with this one).
    """

    class Config:
        strict = True
        coerce = True


@dataclass(frozen=True)
class DatasetInfo:
    """What a contract says about its dataset beyond the columns."""

    name: str
    primary_key: tuple[str, ...]
    modified_column: str | None
    sendable_field: str | None


def schema_of(model: type[pa.DataFrameModel]) -> pa.DataFrameSchema:
    return model.to_schema()


def _mce(column: Any, name: str, model: type[pa.DataFrameModel]) -> dict[str, Any]:
    meta = (column.metadata or {}).get("mce")
    if meta is None:
        raise TypeError(f"{model.__name__}.{name} is not declared with mce_field")
    return dict(meta)


def de_fields(model: type[pa.DataFrameModel]) -> tuple[DEField, ...]:
    """The data-extension fields of a contract, in column order."""
    fields = []
    for name, column in schema_of(model).columns.items():
        meta = _mce(column, name, model)
        fields.append(
            DEField(
                name=name,
                field_type=meta["type"],
                max_length=meta["max_length"] if meta["type"] in TEXT_TYPES else None,
                precision=meta["precision"],
                scale=meta["scale"],
                is_primary_key=meta["primary_key"],
                is_required=not column.nullable,
                description=column.description,
            )
        )
    return tuple(fields)


def dataset_info(model: type[pa.DataFrameModel]) -> DatasetInfo:
    meta = getattr(model.Config, "metadata", None) or {}
    fields = de_fields(model)
    return DatasetInfo(
        name=meta["dataset"],
        primary_key=tuple(f.name for f in fields if f.is_primary_key),
        modified_column=meta.get("modified_column"),
        sendable_field=meta.get("sendable_field"),
    )


def columns_of_type(model: type[pa.DataFrameModel], *types: str) -> list[str]:
    return [f.name for f in de_fields(model) if f.field_type in types]


def duckdb_columns(model: type[pa.DataFrameModel]) -> dict[str, str]:
    """Column name -> DuckDB type, for staging tables and the warehouse."""
    return {f.name: duckdb_type(f) for f in de_fields(model)}
