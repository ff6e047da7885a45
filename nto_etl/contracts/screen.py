"""A contract's rules as DuckDB SQL: a fast screen that never passes a row pandera would refuse.

Validating a million rows column by column in pandas costs seconds; the same rules as one
SQL expression cost a fraction of that. The screen is derived from the pandera schema
itself (its columns, dtypes, nullability and checks), so the contract stays the single
source of truth:

    screen = compile_screen(Contact)        # None when some rule has no safe SQL form
    sql = screen.screening("SELECT * FROM raw")  # typed values, __ok, the refused rows' text

A row for which `passes` is true is certainly valid and its typed values are exactly those
pandera's coercion gives. A row for which it is false is not necessarily invalid: the
screen is deliberately stricter than pandera (ASCII-only patterns, plain ISO dates, plain
numbers), and such rows go through pandera, which decides and describes the failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandera.pandas as pa

from nto_etl.contracts.fields import SYNTAX_RULES, TEXT_TYPES, de_fields
from nto_etl.mce import rules
from nto_etl.mce.fields import DEField, duckdb_type
from nto_etl.sql import ident, literal

# Dates the screen parses itself: ISO 8601 as pandas reads it, years 1700-2199 (inside
# datetime64[ns]), valid clock times, at most microseconds; anything else goes to pandas.
ISO_DATE = (
    r"(1[7-9]|2[01])[0-9]{2}-[0-9]{2}-[0-9]{2}"
    r"([ T]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?)?"
)
FIRST_DAY, PAST_LAST_DAY = "1700-01-01", "2200-01-01"  # the years ISO_DATE accepts
INTEGER = r"[+-]?[0-9]{1,18}"
# Python's \d, \w and \s are Unicode-aware, RE2's are ASCII; inside a negated class RE2's
# would accept more than Python's. Patterns using them (or inline flags) are not screened.
UNSAFE_PATTERN = re.compile(r"\\[dDwWsSbBAZ]|\(\?")
RAW = "__raw_"  # prefix of the columns keeping a refused row's text as read
VALUE = "__value_"  # prefix of the typed values, computed once and used by every rule
COMPARISONS = {
    "greater_than": ">",
    "greater_than_or_equal_to": ">=",
    "less_than": "<",
    "less_than_or_equal_to": "<=",
    "equal_to": "=",
    "not_equal_to": "<>",
}


class NotScreenable(ValueError):
    """A rule of the contract has no SQL form known to be at least as strict as pandera's."""


@dataclass(frozen=True)
class Screen:
    """SQL over a table of text columns: the CSV as read, with nulls for empty cells (never '')."""

    fields: tuple[DEField, ...]
    typed: dict[str, str]  # typed column -> SQL of its value in the contract's type, over its text
    passes: str  # SQL over the text and the `__value_` columns, true when every rule certainly holds

    def _values(self, skip: str | None, keep: tuple[str, ...]) -> str:
        return "".join(
            f", {_unless(skip, expr, name in keep)} AS {ident(VALUE + name)}"
            for name, expr in self.typed.items()
        )

    def _typed_select(self, skip: str | None, keep: tuple[str, ...]) -> str:
        return ", ".join(
            f"{_unless(skip, ident(VALUE + f.name) if f.name in self.typed else ident(f.name), f.name in keep)} "
            f"AS {ident(f.name)}"
            for f in self.fields
        )

    @property
    def _kept_as_read(self) -> list[DEField]:
        """Typed fields: their typed value says nothing of a refused text, so the text is kept."""
        return [f for f in self.fields if f.field_type not in TEXT_TYPES]

    def table_columns(self) -> str:
        """Columns of a table of screened rows: the typed values, `__ok` (the screen passed the
        row), and for refused rows the text of each typed field as read (`__raw_<name>`)."""
        typed = ", ".join(f"{ident(f.name)} {duckdb_type(f)}" for f in self.fields)
        kept = "".join(f", {ident(RAW + f.name)} VARCHAR" for f in self._kept_as_read)
        return f"{typed}, __ok BOOLEAN{kept}"

    def screening(self, rows: str, *extra: str, skip: str | None = None, keep: tuple[str, ...] = ()) -> str:
        """SELECT of `table_columns()` (then the `extra` expressions, over the text columns) for
        the rows of `rows`, a query giving the contract's columns as text.

        `skip` names a boolean column of `rows`: where it is true the row is not screened. Its
        `__ok` is null and its values are null, except those of the columns in `keep`."""
        kept = "".join(
            f", CASE WHEN NOT __ok THEN {ident(f.name)} END AS {ident(RAW + f.name)}"
            for f in self._kept_as_read
        )
        more = "".join(f", {e}" for e in extra)
        # Typed values first, once each (DuckDB does not share a repeated cast within a filter).
        with_values = f"SELECT *{self._values(skip, keep)} FROM ({rows})"
        ok = _unless(skip, self.passes, False)
        return (
            f"SELECT {self._typed_select(skip, keep)}, __ok{kept}{more} "
            f"FROM (SELECT *, {ok} AS __ok FROM ({with_values}))"
        )

    def as_read(self) -> str:
        """Select list over such a table giving each column's text as read, for pandera to judge."""
        return ", ".join(
            ident(column) if column == f.name else f"{ident(column)} AS {ident(f.name)}"
            for f, column in zip(self.fields, self.as_read_columns(), strict=True)
        )

    def as_read_columns(self) -> list[str]:
        """The columns of such a table holding text as read: each text column whole, and for
        a typed column, the text of the rows the screen refused."""
        return [RAW + f.name if f.field_type not in TEXT_TYPES else f.name for f in self.fields]


def _unless(skip: str | None, expr: str, kept: bool) -> str:
    """`expr`, or null where the boolean column `skip` is true (CASE: DuckDB then evaluates
    `expr` only for the other rows)."""
    return expr if skip is None or kept else f"CASE WHEN {ident(skip)} THEN NULL ELSE {expr} END"


def compile_screen(model: type[pa.DataFrameModel]) -> Screen | None:
    """The screen of a contract, or None when one of its rules cannot be screened safely."""
    try:
        return _compile(model)
    except NotScreenable:
        return None


def _compile(model: type[pa.DataFrameModel]) -> Screen:
    schema = model.to_schema()
    if schema.checks or schema.unique or not schema.strict:
        raise NotScreenable(f"{model.__name__}: dataframe-level rules")
    fields = de_fields(model)
    typed: dict[str, str] = {}
    conditions: list[str] = []
    for f in fields:
        column = schema.columns[f.name]
        if column.unique or column.regex:
            raise NotScreenable(f"{f.name}: uniqueness or regex column")
        text = ident(f.name)  # empty cells are already null: DuckDB's CSV reader makes them so
        parsed = _parse(f, text, ident(VALUE + f.name))
        if parsed is None:  # text: its value is the text itself
            value = text
        else:
            typed[f.name], parses = parsed
            value = ident(VALUE + f.name)
            conditions.append(parses)
        if not column.nullable:
            conditions.append(f"{text} IS NOT NULL")
        for check in column.checks:
            if not check.ignore_na:
                raise NotScreenable(f"{f.name}: {check.name} does not ignore nulls")
            rule = _check(check.name, check.statistics, value, text, f)
            conditions.append(f"({text} IS NULL OR {rule})")
    passes = " AND ".join(f"coalesce({c}, false)" for c in conditions) or "true"
    return Screen(fields, typed, passes)


def _parse(f: DEField, text: str, value: str) -> tuple[str, str] | None:
    """(SQL of the typed value, the condition, over `value`, under which it is exactly pandas'
    coercion); None for text. CASE, not OR: DuckDB evaluates every operand of an OR."""
    match f.field_type:
        case "Date":
            # The text DuckDB itself renders for the value (YYYY-MM-DD HH:MM:SS[.f]) is read alike
            # by pandas; comparing with it costs half a regular expression. Other forms: the regex.
            return (
                f"TRY_CAST({text} AS TIMESTAMP)",
                f"CASE WHEN {text} IS NULL THEN true WHEN CAST({value} AS VARCHAR) = {text} "
                f"THEN {value} >= TIMESTAMP '{FIRST_DAY}' AND {value} < TIMESTAMP '{PAST_LAST_DAY}' "
                f"ELSE regexp_full_match({text}, {literal(ISO_DATE)}) AND {value} IS NOT NULL END",
            )
        case "Number":
            # Out of range: null, and the row goes to pandera. Canonical text ("-12", not "+012")
            # is recognised by rendering the value back; other forms go through the regex.
            return (
                f"TRY_CAST({text} AS {duckdb_type(f)})",
                f"CASE WHEN {text} IS NULL THEN true WHEN CAST({value} AS VARCHAR) = {text} THEN true "
                f"ELSE regexp_full_match({text}, {literal(INTEGER)}) END",
            )
        case "Decimal":
            assert f.precision is not None and f.scale is not None
            whole = min(f.precision - f.scale, 15 - f.scale)
            pattern = (
                rf"[+-]?[0-9]{{1,{whole}}}(\.[0-9]{{1,{f.scale}}})?"
                if f.scale
                else rf"[+-]?[0-9]{{1,{whole}}}"
            )
            # At most `scale` decimals and 15 digits: the double pandas parses converts back exactly.
            return (
                f"TRY_CAST({text} AS DECIMAL({f.precision},{f.scale}))",
                f"({text} IS NULL OR regexp_full_match({text}, {literal(pattern)}))",
            )
        case "Boolean":
            truths = ", ".join(literal(v) for v in rules.BOOLEAN_TRUE)
            falsehoods = ", ".join(literal(v) for v in rules.BOOLEAN_FALSE)
            lowered = f"lower(trim({text}, ' '))"
            return (
                f"CASE WHEN {lowered} IN ({truths}) THEN true WHEN {lowered} IN ({falsehoods}) THEN false END",
                f"({text} IS NULL OR {lowered} IN ({truths}, {falsehoods}))",
            )
        case _:
            return None


def _check(name: str, stats: dict[str, Any], value: str, text: str, f: DEField) -> str:
    if name == "str_length":
        parts = []
        if stats.get("exact_value") is not None:
            parts.append(f"length({text}) = {int(stats['exact_value'])}")
        if stats.get("min_value") is not None:
            parts.append(f"length({text}) >= {int(stats['min_value'])}")
        if stats.get("max_value") is not None:
            # Characters, as Python counts them; bytes first, which is cheaper and enough for ASCII.
            most = int(stats["max_value"])
            parts.append(f"CASE WHEN strlen({text}) <= {most} THEN true ELSE length({text}) <= {most} END")
        return " AND ".join(parts) or "true"
    if name == "str_matches":
        return f"regexp_matches({text}, {literal('^(?:' + _safe(stats['pattern'], f) + ')')})"
    if name == "mce_syntax":
        return f"regexp_full_match({text}, {literal(_safe(SYNTAX_RULES[stats['rule']], f))})"
    if name == "isin":
        allowed = list(stats["allowed_values"])
        if not all(isinstance(v, str) for v in allowed) or f.field_type not in (
            "Text",
            "EmailAddress",
            "Phone",
            "Locale",
        ):
            raise NotScreenable(f"{f.name}: isin over non-text values")
        return f"{text} IN ({', '.join(literal(v) for v in allowed)})" if allowed else "false"
    if f.field_type not in ("Number", "Decimal"):
        raise NotScreenable(f"{f.name}: {name} on a {f.field_type} field")
    if name in COMPARISONS:
        bound = next(iter(stats.values()))
        return f"{value} {COMPARISONS[name]} {_number(bound)}"
    if name == "in_range":
        low = ">=" if stats.get("include_min", True) else ">"
        high = "<=" if stats.get("include_max", True) else "<"
        return f"{value} {low} {_number(stats['min_value'])} AND {value} {high} {_number(stats['max_value'])}"
    raise NotScreenable(f"{f.name}: no SQL form for the check {name}")


def _safe(pattern: str, f: DEField) -> str:
    if UNSAFE_PATTERN.search(pattern):
        raise NotScreenable(f"{f.name}: pattern {pattern!r} uses Unicode classes or flags")
    return pattern


def _number(bound: Any) -> str:
    if isinstance(bound, bool) or not isinstance(bound, int | float):
        raise NotScreenable(f"bound {bound!r} is not a number")
    return repr(bound) if isinstance(bound, float) else str(bound)
