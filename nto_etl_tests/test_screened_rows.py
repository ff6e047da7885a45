"""Screened rows kept in memory or in a table: numbered in the query's order, set aside by number."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as arrow
import pytest

from nto_etl.screened_rows import ScreenedRows, _line_feed_values, memory_bytes

ROWS = "SELECT i AS v, i % 3 <> 0 AS __ok FROM range(10, 20) t(i)"


@pytest.mark.parametrize("in_memory", [True, False])
def test_rows_are_numbered_in_order_and_set_aside_by_number(in_memory: bool) -> None:
    with duckdb.connect() as con:
        rows = ScreenedRows(con, in_memory=in_memory)
        assert rows.fill(ROWS) == 10
        assert con.sql("SELECT __row, v FROM screened").fetchall() == [(n, n + 9) for n in range(1, 11)]
        rows.set_aside(np.array([2, 5], dtype=np.int64))  # values 11 and 14
        staged = con.sql("SELECT v FROM screened WHERE __ok").fetchall()
        assert [v for (v,) in staged] == [10, 13, 16, 17, 19]
        rows.release()
        with pytest.raises(duckdb.CatalogException):
            con.sql("SELECT * FROM screened").fetchall()


def test_a_query_that_fails_keeps_nothing() -> None:
    with duckdb.connect() as con:
        rows = ScreenedRows(con, in_memory=True)
        with pytest.raises(duckdb.Error):
            rows.fill("SELECT CAST('x' AS INTEGER) AS v, true AS __ok")
        rows.create_empty("v INTEGER, __ok BOOLEAN")
        assert con.sql("SELECT count(*) FROM screened").fetchall() == [(0,)]


def test_line_breaks_are_found_per_row_across_columns() -> None:
    with duckdb.connect() as con:
        rows = ScreenedRows(con, in_memory=True)
        rows.fill(
            "SELECT * FROM (VALUES ('a', 'x'), (E'b\\nc', NULL), ('d', E'y\\n\\nz'), (NULL, 'w'), "
            "(E'\\n', E'\\n')) t(s, u)"
        )
        numbers, breaks = rows.line_breaks(["s", "u"])
        assert numbers.tolist() == [2, 3, 5] and breaks.tolist() == [1, 2, 2]
        assert [len(found) for found in rows.line_breaks([])] == [0, 0]


def test_line_breaks_need_the_rows_in_memory() -> None:
    with duckdb.connect() as con:
        rows = ScreenedRows(con, in_memory=False)
        rows.fill("SELECT 'a' AS s")
        with pytest.raises(ValueError, match="in memory"):
            rows.line_breaks(["s"])


@pytest.mark.parametrize("kind", [arrow.string(), arrow.large_string(), arrow.string_view()])
def test_line_feeds_are_found_in_slices_and_every_text_type(kind: arrow.DataType) -> None:
    values = arrow.array(["\n", "a\nb", None, "c", "d\ne\nf", "\n"], type=kind)
    assert _line_feed_values(values).tolist() == [0, 1, 4, 4, 5]
    assert _line_feed_values(values.slice(2, 3)).tolist() == [2, 2]  # "d\ne\nf" is the slice's third
    assert _line_feed_values(arrow.array([None, None], type=kind)).tolist() == []


def test_a_null_value_holding_bytes_is_no_value() -> None:
    """Arrow allows a null slot to cover bytes; they belong to no value."""
    offsets = arrow.py_buffer(np.array([0, 2, 5, 6], dtype=np.int32).tobytes())
    data = arrow.py_buffer(b"a\nb\ncd")
    validity = arrow.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes())
    values = arrow.Array.from_buffers(arrow.string(), 3, [validity, offsets, data], null_count=1)
    assert values.to_pylist() == ["a\n", None, "d"]
    assert _line_feed_values(values).tolist() == [0]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("512MB", 512 * 10**6), ("1GiB", 2**30), ("2.5 GB", 2_500_000_000), ("100kb", 10**5), ("4096", 4096)],
)
def test_memory_settings_in_bytes(setting: str, expected: int) -> None:
    assert memory_bytes(setting) == expected


def test_a_memory_setting_that_is_not_a_size_says_so() -> None:
    with pytest.raises(ValueError, match="not a memory size: '512 apples'"):
        memory_bytes("512 apples")
