"""Delta files: only rows MCE does not have, the same bytes for the same content, one hash per key."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb

from nto_etl.contracts import Contact, de_fields
from nto_etl.delta import drop_delta, hold_delta, prepare_delta, record_delta

HEADER = (
    "customer_id,subscriber_key,email,first_name,last_name,phone,street,city,state,postal_code,country,"
    "locale,created_at,modified_at"
)


def row(n: int, name: str = "Ann", modified: str = "11/02/2026 09:00:00") -> str:
    return f"C{n},K{n:03d},c{n}@example.com,{name},Lee,,,,,,US,en-US,11/01/2026 09:00:00,{modified}"


def staged(tmp_path: Path, rows: list[str], name: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def delta(con: duckdb.DuckDBPyConnection, source: Path, out: Path) -> tuple[int, int, list[list[str]]]:
    result = prepare_delta(con, "contacts", source, de_fields(Contact), out, modified_column="modified_at")
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert ",".join(rows[0]) == HEADER
    return result.rows, result.unchanged, rows[1:]


def imported(con: duckdb.DuckDBPyConnection, content: str = "content") -> int:
    """What the sync does around an import that MCE completed without errors."""
    hold_delta(con, "contacts", content)
    return record_delta(con, "contacts", content)


def test_only_new_and_changed_rows_are_sent_in_key_order(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    day1 = staged(tmp_path, [row(3), row(1), row(2)], "day1.csv")
    assert delta(con, day1, tmp_path / "d1.csv")[:2] == (3, 0)
    assert (tmp_path / "d1.csv").read_bytes() == day1.read_bytes()  # all new: the staged file as it is
    imported(con)

    assert delta(con, day1, tmp_path / "again.csv") == (0, 3, [])
    day2 = staged(
        tmp_path,
        [row(4), row(3, "Anne", "11/03/2026 09:00:00"), row(1), row(2, "Old", "10/01/2026 09:00:00")],
        "day2.csv",
    )
    sent, unchanged, rows = delta(con, day2, tmp_path / "d2.csv")
    # Row 2 is older than what MCE has: stale, never sent. Rows come in key order.
    assert (sent, unchanged) == (2, 2)
    assert [r[1] for r in rows] == ["K003", "K004"]
    imported(con)
    keys = con.execute("SELECT row_key, count(*) FROM row_hashes GROUP BY 1 ORDER BY 1").fetchall()
    assert keys == [("K001", 1), ("K002", 1), ("K003", 1), ("K004", 1)]


def test_the_same_content_gives_the_same_bytes(tmp_path: Path) -> None:
    outs = []
    for attempt in range(2):
        con = duckdb.connect()
        delta(con, staged(tmp_path, [row(n) for n in range(50)], f"base{attempt}.csv"), tmp_path / "b.csv")
        imported(con)
        changed = [row(n, "Zed" if n % 7 == 0 else "Ann") for n in reversed(range(60))]
        delta(con, staged(tmp_path, changed, f"next{attempt}.csv"), tmp_path / f"out{attempt}.csv")
        outs.append((tmp_path / f"out{attempt}.csv").read_bytes())
    assert outs[0] == outs[1]
    assert outs[0].count(b"\n") == 1 + 8 + 10  # header, the 8 changed rows, the 10 new ones


def test_a_keyed_table_from_an_earlier_version_is_migrated_with_its_rows(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    source = staged(tmp_path, [row(1), row(2)], "s.csv")
    delta(con, source, tmp_path / "first.csv")
    imported(con)
    # What earlier versions made: the same rows, with a primary key and no raw fingerprints.
    con.execute(
        "CREATE TABLE keyed (de_key VARCHAR NOT NULL, row_key VARCHAR NOT NULL, row_hash VARCHAR NOT NULL, "
        "modified_at TIMESTAMP, PRIMARY KEY (de_key, row_key)); "
        "INSERT INTO keyed SELECT de_key, row_key, row_hash, modified_at FROM row_hashes; "
        "DROP TABLE row_hashes; ALTER TABLE keyed RENAME TO row_hashes; "
        "ALTER TABLE pending_row_hashes DROP COLUMN raw_fp; ALTER TABLE pending_row_hashes DROP COLUMN staged_in"
    )
    assert delta(con, source, tmp_path / "second.csv")[:2] == (0, 2)
    constraints = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'row_hashes' AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    assert constraints == [(0,)]
    assert con.execute("SELECT count(*), count(raw_fp) FROM row_hashes").fetchall() == [(2, 0)]
    assert con.execute("SELECT count(raw_fp), count(staged_in) FROM pending_row_hashes").fetchall() == [
        (0, 0)
    ]


def test_every_row_changed_or_a_full_refresh_sends_the_staged_file_as_it_is(tmp_path: Path) -> None:
    con = duckdb.connect()
    delta(con, staged(tmp_path, [row(2), row(1)], "day1.csv"), tmp_path / "d1.csv")
    imported(con)
    changed = staged(tmp_path, [row(2, "Bo"), row(1, "Cy")], "day2.csv")
    assert delta(con, changed, tmp_path / "d2.csv")[:2] == (2, 0)
    assert (tmp_path / "d2.csv").read_bytes() == changed.read_bytes()  # file order, not key order
    imported(con)
    result = prepare_delta(
        con, "contacts", changed, de_fields(Contact), tmp_path / "full.csv", full_refresh=True
    )
    assert (result.rows, result.unchanged) == (2, 0)
    assert (tmp_path / "full.csv").read_bytes() == changed.read_bytes()
    imported(con)
    assert con.execute("SELECT count(*) FROM row_hashes").fetchall() == [(2,)]  # one hash per key


def test_held_hashes_count_only_once_mce_has_imported_them(tmp_path: Path) -> None:
    """The sync holds the hashes while MCE imports, with the warehouse closed in between: they
    survive the connection, and only a completed import makes them what MCE has."""
    database = str(tmp_path / "w.duckdb")
    with duckdb.connect(database) as con:
        delta(con, staged(tmp_path, [row(1), row(2)], "day1.csv"), tmp_path / "d1.csv")
        assert hold_delta(con, "contacts", "sha-1") == 2
        assert con.execute("SELECT count(*) FROM row_hashes").fetchall() == [(0,)]
    with duckdb.connect(database) as con:  # the import ended in error: nothing is recorded
        drop_delta(con, "contacts", "sha-1")
        assert record_delta(con, "contacts", "sha-1") == 0
        assert delta(con, staged(tmp_path, [row(1), row(2)], "again.csv"), tmp_path / "d2.csv")[:2] == (2, 0)
        hold_delta(con, "contacts", "sha-2")
    with duckdb.connect(database) as con:  # completed: recorded, and no longer held
        assert record_delta(con, "contacts", "sha-2") == 2
        assert con.execute("SELECT count(*) FROM pending_row_hashes").fetchall() == [(0,)]
        assert delta(con, staged(tmp_path, [row(1), row(2)], "third.csv"), tmp_path / "d3.csv")[:2] == (0, 2)


def test_hashes_left_behind_by_a_run_that_never_started_its_import_are_forgotten(tmp_path: Path) -> None:
    con = duckdb.connect()
    delta(con, staged(tmp_path, [row(1), row(2)], "day1.csv"), tmp_path / "d1.csv")
    hold_delta(con, "contacts", "abandoned")
    hold_delta(con, "contacts", "in-flight")
    delta(con, staged(tmp_path, [row(3)], "day2.csv"), tmp_path / "d2.csv")
    hold_delta(con, "contacts", "today", in_flight=["in-flight"])
    held = con.execute(
        "SELECT content_sha256, count(*) FROM pending_row_hashes GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert held == [("in-flight", 2), ("today", 1)]
