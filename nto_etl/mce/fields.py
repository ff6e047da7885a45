"""The vocabulary of data-extension fields: plain data, shared by the client and the data contracts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

FIELD_TYPES = ("Text", "Number", "Decimal", "Date", "Boolean", "EmailAddress", "Phone", "Locale")


@dataclass(frozen=True)
class DEField:
    """One data-extension column, as MCE defines it."""

    name: str
    field_type: str = "Text"
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    is_primary_key: bool = False
    is_required: bool = False
    default_value: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.field_type not in FIELD_TYPES:
            raise ValueError(f"field {self.name}: unknown MCE field type {self.field_type!r}")


class Typed(Protocol):
    """Anything with an MCE field type (DEField, the local MCE's FieldDef)."""

    @property
    def field_type(self) -> str: ...
    @property
    def precision(self) -> int | None: ...
    @property
    def scale(self) -> int | None: ...


def duckdb_type(field: Typed) -> str:
    """The DuckDB type holding a field's values: the pipeline's tables and the local MCE's DEs alike.

    A Decimal without precision and scale is MCE's default, 18 digits and no decimals.
    """
    match field.field_type:
        case "Number":
            return "INTEGER"
        case "Decimal":
            return f"DECIMAL({field.precision or 18},{field.scale or 0})"
        case "Date":
            return "TIMESTAMP"
        case "Boolean":
            return "BOOLEAN"
        case _:
            return "VARCHAR"
