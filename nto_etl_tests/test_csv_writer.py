"""The pipeline's CSV writer: what MCE's import and DuckDB read back is exactly what was written."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pyarrow as arrow
import pytest

from nto_etl.csv_writer import write_csv

AWKWARD = [
    (1, 'say "hi"', None),
    (2, "a,b", "line one\nline two"),
    (3, "  spaced  ", "Chloé 李"),
    (4, "", "x"),
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (id INTEGER, name VARCHAR, note VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", AWKWARD)
    return con


def test_text_is_quoted_numbers_are_not_and_nulls_are_empty(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    out = tmp_path / "t.csv"
    assert write_csv(con, "SELECT * FROM t ORDER BY id", out) == 4
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "id,name,note"
    assert lines[1] == '1,"say ""hi""",'  # the quote doubled; the null empty and unquoted
    assert lines[-1] == ""  # the last row ends with a line break


def test_what_is_written_reads_back_the_same(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    write_csv(con, "SELECT * FROM t ORDER BY id", out)
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [(int(r[0]), r[1], r[2]) for r in rows] == [(i, n, "" if v is None else v) for i, n, v in AWKWARD]
    # DuckDB, as the local MCE reads an import: text, quotes, commas and line breaks intact. (MCE
    # keeps no empty strings; the staged files never hold one, and a reader may take "" as null.)
    back = con.execute(
        f"SELECT * FROM read_csv('{out}', header = true, quote = '\"', escape = '\"', all_varchar = true, "
        "allow_quoted_nulls = false)"
    ).fetchall()
    assert [(int(r[0]), r[1], r[2]) for r in back] == AWKWARD


def test_an_empty_result_is_a_header_only(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    assert write_csv(con, "SELECT * FROM t WHERE false", out) == 0
    assert out.read_text() == "id,name,note\n"


def test_a_failing_query_leaves_no_file_and_no_part(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    out.write_text("previous\n")
    with pytest.raises(duckdb.Error):
        write_csv(con, "SELECT id, CAST(name AS INTEGER) FROM t", out)
    assert out.read_text() == "previous\n"  # the earlier file is untouched
    assert not list(tmp_path.glob("*.part"))


def test_names_that_need_quoting_are_quoted_in_the_header(tmp_path: Path) -> None:
    con = duckdb.connect()
    out = tmp_path / "t.csv"
    write_csv(con, 'SELECT 1 AS "a,b", 2 AS plain', out)
    assert out.read_text().splitlines()[0] == '"a,b",plain'


def test_a_writer_failure_stops_the_query_and_leaves_no_file(tmp_path: Path) -> None:
    con = duckdb.connect()
    out = tmp_path / "t.csv"
    # Arrow's CSV writer has no form for a list: the writing thread fails while DuckDB still
    # has batches to give; the error reaches the caller instead of the query blocking.
    with pytest.raises(arrow.ArrowException):
        write_csv(con, "SELECT i, [i, i] AS pair FROM range(1000000) t(i)", out)
    assert not out.exists()
    assert not list(tmp_path.glob("*.part"))
