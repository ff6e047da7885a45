"""The vocabulary of data-extension fields: plain data, shared by the client and the data contracts."""

from __future__ import annotations

from dataclasses import dataclass

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
