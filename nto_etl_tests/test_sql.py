"""The SQL helpers: repeated values found by their hashes, pages, registered frames, strict CSV reading,
unordered inserts."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from nto_etl import sql


@pytest.mark.parametrize("at_once", [3, 1_000])
def test_repeated_hashes_are_found_whether_sorted_at_once_or_in_slices(
    monkeypatch: pytest.MonkeyPatch, at_once: int
) -> None:
    monkeypatch.setattr(sql, "HASHES_AT_ONCE", at_once)  # 3: eighteen values in six slices
    con = duckdb.connect()
    values = "SELECT * FROM (VALUES (1), (2), (3), (2), (5), (8), (13), (8), (8), (21)) v(x)"
    hashes = f"SELECT CAST(x * 1000003 AS UBIGINT) AS h FROM ({values} UNION ALL {values}) WHERE x <> 21"
    assert sorted(sql.repeated_hashes(con, hashes).tolist()) == [x * 1000003 for x in (1, 2, 3, 5, 8, 13)]
    assert sql.repeated_hashes(con, f"SELECT DISTINCT h FROM ({hashes})").size == 0
    assert sql.repeated_hashes(con, f"SELECT h FROM ({hashes}) WHERE false").size == 0


def test_pages_come_in_row_order_indexed_by_row_and_writes_between_them_are_safe() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT (10 - i) * 3 AS __row, 'v' || i AS v FROM range(10) r(i)")
    con.execute("CREATE TABLE seen (v VARCHAR)")
    sizes = []
    for page in sql.pages(con, "SELECT * FROM t WHERE __row > 3", 4):
        sizes.append(len(page))
        sql.insert_frame(con, "seen", page)  # the connection is free between pages
    assert sizes == [4, 4, 1]
    assert [v for (v,) in con.execute("SELECT v FROM seen").fetchall()] == [f"v{i}" for i in range(8, -1, -1)]


def test_a_registered_frame_is_gone_after_the_block_even_when_it_fails() -> None:
    con = duckdb.connect()
    frame = pd.DataFrame({"x": [1, 2, 3]})
    with sql.registered(con, "__f", frame) as name:
        assert sql.scalar(con, f"SELECT sum(x) FROM {name}") == 6
    with pytest.raises(duckdb.BinderException), sql.registered(con, "__f", frame):
        con.execute("SELECT no_such_column FROM __f")
    with pytest.raises(duckdb.CatalogException):
        con.execute("SELECT * FROM __f")


def test_csv_as_text_keeps_text_makes_empty_cells_null_and_refuses_a_short_row(tmp_path: Path) -> None:
    con = duckdb.connect()
    good = tmp_path / "good.csv"
    good.write_text('a;b\n007;""\n;"x;y"\n', encoding="utf-8")
    assert con.execute(f"SELECT * FROM {sql.csv_as_text(good, ['a', 'b'], ';')}").fetchall() == [
        ("007", None),
        (None, "x;y"),
    ]
    short = tmp_path / "short.csv"
    short.write_text("a,b\n1,2\n3\n", encoding="utf-8")
    with pytest.raises(duckdb.InvalidInputException):
        con.execute(f"SELECT * FROM {sql.csv_as_text(short, ['a', 'b'])}").fetchall()


@pytest.mark.parametrize("before", [True, False])
def test_unordered_inserts_put_the_setting_back_even_when_the_block_fails(before: bool) -> None:
    con = duckdb.connect()
    con.execute(f"SET preserve_insertion_order = {before}")
    setting = "SELECT current_setting('preserve_insertion_order')"
    seen = []

    def fails_in_the_block() -> None:
        with sql.unordered_inserts(con):
            seen.extend(con.execute(setting).fetchall())
            con.execute("SELECT error('in the block')")

    with pytest.raises(duckdb.Error, match="in the block"):
        fails_in_the_block()
    assert seen == [(False,)]
    assert con.execute(setting).fetchall() == [(before,)]
