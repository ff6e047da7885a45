"""The SQL helpers: repeated values found by their hashes, whole or in slices."""

from __future__ import annotations

import duckdb
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
