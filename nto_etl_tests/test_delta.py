"""Delta files: only rows MCE does not have, the same bytes for the same content, one hash per key,
and the raw fingerprints of the rows MCE holds for the next day's staging to skip."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import numpy as np
import pytest

from nto_etl.contracts import Contact, de_fields
from nto_etl.delta import drop_delta, hold_delta, known_fingerprints, prepare_delta, record_delta
from nto_etl_tests.helpers import CONTACTS_HEADER, write_export


def row(n: int, name: str = "Ann", modified: str = "11/02/2026 09:00:00") -> str:
    return f"C{n},K{n:03d},c{n}@example.com,{name},Lee,,,,,,US,en-US,11/01/2026 09:00:00,{modified}"


def staged(tmp_path: Path, rows: list[str], name: str) -> Path:
    return write_export(tmp_path, [CONTACTS_HEADER, *rows], newline="\n", name=name)


def delta(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    out: Path,
    fingerprints: list[int] | None = None,
    day: str | None = None,
) -> tuple[int, int, list[list[str]]]:
    result = prepare_delta(
        con,
        "contacts",
        source,
        de_fields(Contact),
        out,
        modified_column="modified_at",
        fingerprints=None if fingerprints is None else np.array(fingerprints, dtype=np.uint64),
        partition_key=day,
    )
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert ",".join(rows[0]) == CONTACTS_HEADER
    return result.rows, result.unchanged, rows[1:]


def imported(con: duckdb.DuckDBPyConnection, content: str = "content", day: str | None = None) -> int:
    """What the sync does around an import that MCE completed without errors."""
    hold_delta(con, "contacts", content, partition_key=day)
    return record_delta(con, "contacts", content)


def recorded(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int | None, str | None]]:
    """Each key's raw fingerprint and the day that staged it."""
    rows = con.execute("SELECT row_key, raw_fp, staged_in FROM row_hashes ORDER BY row_key").fetchall()
    return {key: (fp, day) for key, fp, day in rows}


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


def test_the_delta_records_each_rows_fingerprint_and_the_day_that_staged_it(tmp_path: Path) -> None:
    con = duckdb.connect()
    assert delta(con, staged(tmp_path, [row(1), row(2)], "day1.csv"), tmp_path / "d1.csv")[0] == 2
    imported(con, day="2026-11-01")
    assert recorded(con) == {"K001": (None, None), "K002": (None, None)}  # staged without fingerprints
    assert len(known_fingerprints(con, "contacts", "2026-11-02")) == 0  # type: ignore[arg-type]
    assert known_fingerprints(con, "other", "2026-11-02") is None  # never imported: nothing to skip

    # Row 1 unchanged gets its fingerprint at once; row 2 changed gets its with its import; row 3 is new.
    day2 = staged(tmp_path, [row(1), row(2, "Bea"), row(3)], "day2.csv")
    assert delta(con, day2, tmp_path / "d2.csv", [11, 12, 13], "2026-11-02")[0] == 2
    imported(con, day="2026-11-02")
    assert recorded(con) == {
        "K001": (11, "2026-11-02"), "K002": (12, "2026-11-02"), "K003": (13, "2026-11-02")
    }  # fmt: skip
    # A day skips only what an earlier day staged: a re-run of that day stages it all again.
    assert set(known_fingerprints(con, "contacts", "2026-11-03").values) == {11, 12, 13}  # type: ignore[union-attr]
    assert len(known_fingerprints(con, "contacts", "2026-11-02")) == 0  # type: ignore[arg-type]

    # The same staged row from other raw values (or under other rules) is recorded under them:
    # a later day finds those. A re-run of a day changes nothing.
    for _ in range(2):
        day3 = staged(tmp_path, [row(1)], "day3.csv")
        assert delta(con, day3, tmp_path / "d3.csv", [99], "2026-11-03")[0] == 0
        imported(con, day="2026-11-03")
        assert recorded(con)["K001"] == (99, "2026-11-03")
    assert delta(con, day2, tmp_path / "d2.csv", [11, 12, 13], "2026-11-02")[0] == 0
    assert recorded(con)["K001"] == (11, "2026-11-02") and recorded(con)["K002"] == (12, "2026-11-02")


def test_fingerprints_that_do_not_match_the_staged_rows_stop_the_delta(tmp_path: Path) -> None:
    con = duckdb.connect()
    delta(con, staged(tmp_path, [row(1)], "day1.csv"), tmp_path / "d1.csv")
    imported(con, day="2026-11-01")
    with pytest.raises(ValueError, match="2 rows but 1 fingerprints"):
        delta(con, staged(tmp_path, [row(1), row(2)], "day2.csv"), tmp_path / "d2.csv", [11], "2026-11-02")
    assert recorded(con) == {"K001": (None, None)}
