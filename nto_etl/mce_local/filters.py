"""Retrieve filters (SimpleFilterPart / ComplexFilterPart) compiled to parameterised SQL.

Values never enter the SQL text: each becomes a named parameter. Columns come from a
resolver, so the same compiler serves data-extension rows (typed columns) and API
objects (JSON bodies).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from nto_etl.mce_local.fieldtypes import FieldDef, value_sql

COMPARISONS = {
    "equals": "=",
    "notEquals": "<>",
    "greaterThan": ">",
    "lessThan": "<",
    "greaterThanOrEqual": ">=",
    "lessThanOrEqual": "<=",
}


class FilterError(ValueError):
    """The filter cannot be applied; the message is what MCE would say."""


# property name -> (SQL column expression, field definition for typed values or None for text)
Resolver = Callable[[str], tuple[str, FieldDef | None]]


class _Params:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"v{len(self.values)}"
        self.values[name] = value.isoformat(sep=" ") if isinstance(value, datetime) else value
        return f"${name}"


def compile_filter(part: Any, resolve: Resolver, *, allow_like: bool = True) -> tuple[str, dict[str, Any]]:
    params = _Params()
    return _compile(part, resolve, params, allow_like), params.values


def _compile(part: Any, resolve: Resolver, params: _Params, allow_like: bool) -> str:
    kind = type(part).__name__
    if kind == "ComplexFilterPart":
        op = str(part.LogicalOperator or "").upper()
        if op not in ("AND", "OR"):
            raise FilterError(f"LogicalOperator must be AND or OR, not {part.LogicalOperator!r}")
        if part.LeftOperand is None or part.RightOperand is None:
            raise FilterError("a ComplexFilterPart needs a LeftOperand and a RightOperand")
        left = _compile(part.LeftOperand, resolve, params, allow_like)
        right = _compile(part.RightOperand, resolve, params, allow_like)
        return f"(({left}) {op} ({right}))"
    if kind != "SimpleFilterPart":
        raise FilterError(f"unsupported filter part {kind}: only SimpleFilterPart and ComplexFilterPart")
    column, field = resolve(str(part.Property))
    operator = str(part.SimpleOperator)
    values: list[Any] = list(part.DateValue or []) or list(part.Value or [])

    def typed(value: Any) -> str:
        placeholder = params.add(value)
        if field is None:
            return placeholder
        if isinstance(value, datetime | date):
            return placeholder if field.field_type == "Date" else f"CAST({placeholder} AS VARCHAR)"
        return value_sql(field, f"CAST({placeholder} AS VARCHAR)")

    if operator in COMPARISONS:
        _need(operator, values, 1)
        return f"{column} {COMPARISONS[operator]} {typed(values[0])}"
    if operator == "isNull":
        return f"{column} IS NULL"
    if operator == "isNotNull":
        return f"{column} IS NOT NULL"
    if operator == "between":
        _need(operator, values, 2)
        return f"{column} BETWEEN {typed(values[0])} AND {typed(values[1])}"
    if operator == "IN":
        if not values:
            raise FilterError("IN needs at least one Value")
        return f"{column} IN ({', '.join(typed(v) for v in values)})"
    if operator in ("like", "beginsWith", "endsWith", "contains", "notContains"):
        if not allow_like:
            raise FilterError(f"the {operator} operator is not supported when retrieving data extension rows")
        _need(operator, values, 1)
        text = f"CAST({column} AS VARCHAR)"
        p = params.add(str(values[0]))
        return {
            "like": f"{text} LIKE {p}",
            "beginsWith": f"starts_with({text}, {p})",
            "endsWith": f"ends_with({text}, {p})",
            "contains": f"contains({text}, {p})",
            "notContains": f"NOT contains({text}, {p})",
        }[operator]
    raise FilterError(f"unsupported SimpleOperator {operator!r}")


def _need(operator: str, values: list[Any], count: int) -> None:
    if len(values) < count:
        raise FilterError(f"{operator} needs {count} value(s), got {len(values)}")
