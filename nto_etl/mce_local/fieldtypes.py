"""Data-extension field types as SQL: storage type, validation and rendering, in DuckDB.

Rows arrive as text (SOAP values, CSV cells). One SQL expression per field says why a
value is refused (or NULL when it is fine), another converts it to the stored type:
imports and SOAP row writes go through the same rules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nto_etl.mce import rules
from nto_etl.mce.fields import duckdb_type


@dataclass(frozen=True)
class FieldDef:
    name: str
    field_type: str
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    is_primary_key: bool = False
    is_required: bool = False
    default_value: str | None = None
    description: str | None = None
    ordinal: int = 0

    @property
    def length_limit(self) -> int | None:
        return self.max_length or rules.DEFAULT_MAX_LENGTH.get(self.field_type)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    """A SQL string literal (for constants from this module only, never for user values)."""
    return "'" + text.replace("'", "''") + "'"


def _problem(f: FieldDef, src: str) -> str:
    """CASE expression: 'code|message' for a refused non-null value, else NULL."""
    name = f.name
    checks: list[tuple[str, int, str]] = []
    limit = f.length_limit
    if f.field_type in ("Text", "EmailAddress", "Phone", "Locale") and limit:
        checks.append(
            (f"length({src}) > {limit}", 70002, f"exceeds the maximum length of {limit} for field {name}")
        )
    match f.field_type:
        case "EmailAddress":
            checks.append(
                (
                    f"NOT regexp_full_match({src}, {lit(rules.EMAIL_PATTERN)})",
                    310007,
                    f"is not a valid email address for field {name}",
                )
            )
        case "Phone":
            checks.append(
                (
                    f"NOT regexp_full_match({src}, {lit(rules.PHONE_PATTERN)})",
                    310007,
                    f"is not a valid phone number for field {name}",
                )
            )
        case "Locale":
            checks.append(
                (
                    f"NOT regexp_full_match({src}, {lit(rules.LOCALE_PATTERN)})",
                    310007,
                    f"is not a valid locale for field {name}",
                )
            )
        case "Number":
            checks.append(
                (
                    f"NOT regexp_full_match(trim({src}), '[+-]?[0-9]+') OR TRY_CAST(trim({src}) AS HUGEINT) "
                    f"NOT BETWEEN {rules.NUMBER_MIN} AND {rules.NUMBER_MAX}",
                    310007,
                    f"is not a whole number between {rules.NUMBER_MIN} and {rules.NUMBER_MAX} for field {name}",
                )
            )
        case "Decimal":
            p, s = f.precision or 18, f.scale or 0
            checks.append(
                (
                    f"NOT regexp_full_match(trim({src}), '[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)') "
                    f"OR length(regexp_replace(split_part(ltrim(trim({src}), '+-'), '.', 1), '^0+', '')) > {p - s}",
                    310007,
                    f"is not a decimal with at most {p - s} integer digits for field {name}",
                )
            )
        case "Date":
            checks.append(
                (f"{rules.date_parse_sql(src)} IS NULL", 310007, f"is not a valid date for field {name}")
            )
        case "Boolean":
            allowed = ", ".join(lit(v) for v in rules.BOOLEAN_TRUE + rules.BOOLEAN_FALSE)
            checks.append(
                (f"lower(trim({src})) NOT IN ({allowed})", 310007, f"is not a valid boolean for field {name}")
            )
    if not checks:
        return "NULL"
    whens = " ".join(f"WHEN {cond} THEN {lit(f'{code}|{msg}')}" for cond, code, msg in checks)
    return f"CASE {whens} ELSE NULL END"


def problem_sql(f: FieldDef, src: str, *, present: str = "TRUE") -> str:
    """Why the text in `src` is refused for field f (code|message), or NULL.

    `present` is a SQL condition saying the value was supplied at all (for updates,
    an absent property keeps the stored value and is not "required").
    """
    required = f.is_required or f.is_primary_key
    parts = []
    if required and f.default_value is None:
        parts.append(f"WHEN ({present}) AND {src} IS NULL THEN {lit(f'70004|field {f.name} is required')}")
    parts.append(f"WHEN {src} IS NULL THEN NULL")
    return f"CASE {' '.join(parts)} ELSE {_problem(f, src)} END"


def value_sql(f: FieldDef, src: str) -> str:
    """Text in `src` converted to the stored type (assumes it passed problem_sql)."""
    expr = src
    if f.default_value is not None:
        default = (
            "strftime(current_timestamp, '%m/%d/%Y %H:%M:%S')"
            if f.default_value.lower() == "now()"
            else lit(f.default_value)
        )
        expr = f"coalesce({src}, {default})"
    match f.field_type:
        case "Number":
            return f"TRY_CAST(trim({expr}) AS INTEGER)"
        case "Decimal":
            return f"TRY_CAST(trim({expr}) AS {duckdb_type(f)})"
        case "Date":
            return rules.date_parse_sql(expr)
        case "Boolean":
            trues = ", ".join(lit(v) for v in rules.BOOLEAN_TRUE)
            return f"CASE WHEN {expr} IS NULL THEN NULL ELSE lower(trim({expr})) IN ({trues}) END"
        case _:
            return expr


def render_sql(f: FieldDef, column: str) -> str:
    """The stored value as the text MCE returns in Retrieve results and extracts."""
    match f.field_type:
        case "Date":
            return f"strftime({column}, {lit(rules.RENDER_DATE_FORMAT)})"
        case "Boolean":
            return f"CASE WHEN {column} THEN 'True' WHEN NOT {column} THEN 'False' END"
        case _:
            return f"CAST({column} AS VARCHAR)"
