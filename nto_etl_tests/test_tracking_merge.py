"""Merging tracking event files into DuckDB: idempotent, deduplicated, all or nothing on bad events."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from nto_etl import sql
from nto_etl.warehouse import tracking
from nto_etl.warehouse.tracking import EventFile, EventFileError, merge_event_files, merge_events

HEADER = "send_id,subscriber_key,event_type,event_date,url,bounce_category,smtp_code,batch_id"
EVENTS = [
    "9001,K1,Sent,2026-11-01 08:00:00,,,,1",
    "9001,K1,Open,2026-11-01 09:15:00,,,,1",
    "9001,K1,Click,2026-11-01 09:16:00,https://nto.example/a?x=1,,,1",
    "9001,K1,Click,2026-11-01 09:16:00,https://nto.example/b,,,1",
    "9001,K2,HardBounce,2026-11-01 08:00:05,,Hard bounce,550,1",
    "9001,K3,Unsubscribe,2026-11-01 10:00:00,,,,1",
]


def events_file(tmp_path: Path, rows: list[str], name: str = "events.csv") -> EventFile:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return EventFile(path)


def table(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT send_id, subscriber_key, event_type, event_date, url, bounce_category, smtp_code, batch_id "
        "FROM tracking_events ORDER BY ALL"
    ).fetchall()


def test_merging_again_and_overlapping_files_insert_nothing_twice(tmp_path: Path) -> None:
    con = duckdb.connect()
    first = merge_event_files(con, [events_file(tmp_path, EVENTS)], "2026-11-01")
    assert (first.read, first.new, first.path) == (6, 6, "straight")
    assert first.by_type == {"Click": 2, "HardBounce": 1, "Open": 1, "Sent": 1, "Unsubscribe": 1}
    again = merge_event_files(con, [events_file(tmp_path, EVENTS)], "2026-11-01", compare_again=True)
    assert (again.read, again.new, again.path) == (6, 0, "screened")
    late = "9001,K4,Open,2026-11-01 23:59:59,,,,1"
    overlap = events_file(tmp_path, [*EVENTS[3:], late, late], name="next_window.csv")
    merged = merge_event_files(con, [overlap], "2026-11-02")
    # A key repeated in the file: the screened merge removes the repeat.
    assert (merged.read, merged.new, merged.path) == (5, 1, "screened")
    assert len(table(con)) == 7


@pytest.mark.parametrize("at_once", [2, 1_000])
def test_a_repeated_key_is_found_whether_the_hashes_are_sorted_at_once_or_in_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at_once: int
) -> None:
    monkeypatch.setattr(sql, "HASHES_AT_ONCE", at_once)  # 2: six events in three slices
    unique = merge_event_files(duckdb.connect(), [events_file(tmp_path, EVENTS)], "p")
    assert (unique.new, unique.path) == (6, "straight")
    # The first event again, last: same key (a null url included), far from its twin.
    con = duckdb.connect()
    repeated = merge_event_files(con, [events_file(tmp_path, [*EVENTS, EVENTS[0]], "repeat.csv")], "p")
    assert (repeated.read, repeated.new, repeated.path) == (7, 6, "screened")
    assert len(table(con)) == 6


def test_the_same_files_merged_again_are_recognised_and_change_nothing(tmp_path: Path) -> None:
    con = duckdb.connect()
    files = [events_file(tmp_path, EVENTS[:4], name="a.csv"), events_file(tmp_path, EVENTS[4:], name="b.csv")]
    first = merge_event_files(con, files, "2026-11-01")
    before = table(con)
    again = merge_event_files(con, list(reversed(files)), "2026-11-01")  # the order does not matter
    assert (again.read, again.new, again.path, again.by_type) == (6, 0, "recorded", first.by_type)
    assert table(con) == before
    # Compared all the same when asked: the same answer, the long way.
    compared = merge_event_files(con, files, "2026-11-01", compare_again=True)
    assert (compared.read, compared.new, compared.path) == (6, 0, "screened")
    assert table(con) == before
    assert con.execute(
        "SELECT _partition, len(files), partition_events FROM tracking_merged_files"
    ).fetchall() == [("2026-11-01", 2, 6)]


def test_other_files_or_the_same_read_another_way_are_merged_in_full(tmp_path: Path) -> None:
    con = duckdb.connect()
    merge_event_files(con, [events_file(tmp_path, EVENTS)], "p")
    late = "9001,K4,Open,2026-11-01 23:59:59,,,,1"
    more = merge_event_files(con, [events_file(tmp_path, [*EVENTS, late])], "p")
    assert (more.read, more.new, more.path) == (7, 1, "screened")
    # The same bytes with another date format named: they may be other events, so they are read.
    reread = EventFile(tmp_path / "events.csv", date_format="%Y-%m-%d %H:%M:%S")
    assert (merge_event_files(con, [reread], "p").path, len(table(con))) == ("screened", 7)
    # Fewer files than last time: merged in full too.
    fewer = merge_event_files(con, [events_file(tmp_path, EVENTS[:2], name="part.csv")], "p")
    assert (fewer.new, fewer.path) == (0, "screened")


def test_a_partition_that_lost_events_is_merged_in_full_and_gets_them_back(tmp_path: Path) -> None:
    con = duckdb.connect()
    merge_event_files(con, [events_file(tmp_path, EVENTS)], "p")
    before = table(con)
    con.execute("DELETE FROM tracking_events WHERE event_type = 'Click'")  # by hand
    again = merge_event_files(con, [events_file(tmp_path, EVENTS)], "p")
    assert (again.new, again.path) == (2, "screened")
    assert table(con) == before
    # Events the API added to the partition: its count is not the recorded one either.
    api = events_file(tmp_path, ["9001,K9,Sent,2026-11-01 08:00:00,,,,1"], "api.csv")
    frame = pd.read_csv(api.path, dtype=str, keep_default_na=False)
    merge_events(con, frame, "p")
    assert merge_event_files(con, [events_file(tmp_path, EVENTS)], "p").path == "screened"
    assert merge_event_files(con, [events_file(tmp_path, EVENTS)], "p").path == "recorded"


def test_a_failed_merge_leaves_the_record_as_it_was(tmp_path: Path) -> None:
    con = duckdb.connect()
    merge_event_files(con, [events_file(tmp_path, EVENTS)], "p")
    bad = events_file(tmp_path, ["9001,K5,Forward,2026-11-01 10:00:00,,,,1"], name="bad.csv")
    with pytest.raises(EventFileError):
        merge_event_files(con, [events_file(tmp_path, EVENTS), bad], "p")
    assert merge_event_files(con, [events_file(tmp_path, EVENTS)], "p").path == "recorded"
    with pytest.raises(EventFileError):
        merge_event_files(con, [bad], "q")  # a first merge: nothing inserted, nothing recorded
    assert con.execute("SELECT _partition FROM tracking_merged_files").fetchall() == [("p",)]


def test_a_first_merge_overlapping_another_partition_keeps_only_new_events(tmp_path: Path) -> None:
    con = duckdb.connect()
    merge_event_files(con, [events_file(tmp_path, EVENTS)], "2026-11-01")
    late = "9001,K4,Open,2026-11-01 23:59:59,,,,1"
    overlap = events_file(tmp_path, [*EVENTS[3:], late], name="next_window.csv")
    merged = merge_event_files(con, [overlap], "2026-11-02")
    assert (merged.read, merged.new, merged.path) == (4, 1, "straight")
    assert merged.by_type == {"Click": 1, "HardBounce": 1, "Open": 1, "Unsubscribe": 1}  # as read
    assert len(table(con)) == 7
    assert con.execute(
        "SELECT subscriber_key FROM tracking_events WHERE _partition = '2026-11-02'"
    ).fetchall() == [("K4",)]


def test_both_ways_of_merging_give_the_same_table(tmp_path: Path) -> None:
    straight, screened = duckdb.connect(), duckdb.connect()
    files = [events_file(tmp_path, EVENTS[:4], name="a.csv"), events_file(tmp_path, EVENTS[4:], name="b.csv")]
    assert merge_event_files(straight, files, "p").path == "straight"
    # The same partition holding an unrelated event already: the screened merge runs.
    merge_event_files(screened, [events_file(tmp_path, ["1,Z,Sent,2020-01-01 00:00:00,,,,1"], "z.csv")], "p")
    result = merge_event_files(screened, files, "p")
    assert (result.path, result.new) == ("screened", 6)
    assert table(straight) == [row for row in table(screened) if row[1] != "Z"]


def test_files_and_frames_give_the_same_table(tmp_path: Path) -> None:
    from_files, from_frame = duckdb.connect(), duckdb.connect()
    merge_event_files(from_files, [events_file(tmp_path, EVENTS)], "p")
    frame = pd.read_csv(tmp_path / "events.csv", dtype=str, keep_default_na=False)
    merge_events(from_frame, frame, "p")
    assert table(from_files) == table(from_frame)
    assert len(table(from_files)) == 6


def test_the_mce_extract_layout_is_read_by_name_and_date_format(tmp_path: Path) -> None:
    sent = tmp_path / "Sent.csv"
    sent.write_text(
        "SubscriberKey,SendID,EventDate,EventType,BatchID\nK1,9001,11/1/2026 8:00:00 AM,Sent,1\n"
        "K2,9001,11/1/2026 1:05:09 PM,Sent,1\n",
        encoding="utf-8",
    )
    from nto_etl.mce.tracking import RENAMES
    from nto_etl.warehouse.tracking import MCE_EXTRACT_DATES

    con = duckdb.connect()
    merge_event_files(con, [EventFile(sent, RENAMES, MCE_EXTRACT_DATES)], "p")
    assert [(r[1], str(r[3]), r[4]) for r in table(con)] == [
        ("K1", "2026-11-01 08:00:00", None),
        ("K2", "2026-11-01 13:05:09", None),
    ]


def test_rows_the_screen_refuses_but_the_contract_accepts_are_merged(tmp_path: Path) -> None:
    con = duckdb.connect()
    odd = ["+9002,K9,Open,2026-11-01T07:00:00.000000001,,,,007"]
    result = merge_event_files(con, [events_file(tmp_path, EVENTS + odd)], "p")
    assert (result.read, result.new, result.path) == (7, 7, "screened")
    assert (9002, "K9", 7) in [(r[0], r[1], r[7]) for r in table(con)]


def test_one_bad_event_fails_the_merge_and_keeps_nothing(tmp_path: Path) -> None:
    con = duckdb.connect()
    merge_event_files(con, [events_file(tmp_path, EVENTS[:2], name="before.csv")], "p")
    bad = [*EVENTS, "9001,K5,Forward,2026-11-01 10:00:00,,,,1", "x,K6,Open,2026-11-01 10:00:00,,,,1"]
    good = events_file(tmp_path, EVENTS[2:], name="good.csv")
    with pytest.raises(EventFileError) as info:
        merge_event_files(con, [good, events_file(tmp_path, bad, name="bad.csv")], "p")
    message = str(info.value)
    assert "bad.csv" in message and "2 invalid events" in message
    assert "row 7: event_type: isin" in message and "'Forward'" in message
    assert "row 8: send_id: coerce_dtype('Int64')" in message
    assert len(table(con)) == 2  # the good file of the same merge was not kept either
    assert con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '\\_\\_%' ESCAPE '\\'"
    ).fetchall() == [(0,)]


def test_refused_rows_are_judged_a_page_at_a_time_and_the_first_bad_page_stops_the_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "REFUSED_PAGE_ROWS", 2)
    # Nanoseconds: refused by the screen, accepted by the contract. Five such rows, three pages.
    odd = [f"9001,K{n},Open,2026-11-01T07:00:00.000000001,,,,1" for n in range(5)]
    con = duckdb.connect()
    assert merge_event_files(con, [events_file(tmp_path, odd, "odd.csv")], "p").new == 5
    bad = [*odd[:2], odd[2], "9001,K8,Forward,2026-11-01 10:00:00,,,,1", *odd[3:]]
    with pytest.raises(EventFileError) as info:
        merge_event_files(con, [events_file(tmp_path, bad, "bad.csv")], "q")
    assert "row 4: event_type: isin" in str(info.value)
    assert info.value.unchecked == 2 and "2 later rows" in str(info.value)  # the third page
    assert len(table(con)) == 5


def test_a_bad_event_in_a_first_merge_keeps_nothing_either(tmp_path: Path) -> None:
    con = duckdb.connect()
    merge_event_files(con, [events_file(tmp_path, EVENTS[:2], name="before.csv")], "2026-11-01")
    bad = [*EVENTS[2:], "9001,K5,Open,2026-13-01 10:00:00,,,,1"]
    # A valid file first: the straight merge has inserted it when the bad row stops it.
    files = [
        events_file(tmp_path, ["9002,K7,Sent,2026-11-02 08:00:00,,,,1"], "good.csv"),
        events_file(tmp_path, bad, "bad.csv"),
    ]
    with pytest.raises(EventFileError) as info:
        merge_event_files(con, files, "2026-11-02")
    assert "bad.csv" in str(info.value) and "row 5: event_date" in str(info.value)
    assert len(table(con)) == 2
    assert con.execute("SELECT count(*) FROM tracking_events WHERE _partition = '2026-11-02'").fetchall() == [
        (0,)
    ]
    # Both ways inserted without insertion order, and put DuckDB's setting back.
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchall() == [(True,)]


def test_a_failed_insert_reports_its_own_error_and_leaves_nothing(tmp_path: Path) -> None:
    con = duckdb.connect()
    merge_event_files(con, [events_file(tmp_path, EVENTS[:2])], "p")
    frame = pd.read_csv(events_file(tmp_path, EVENTS[2:], "more.csv").path, dtype=str, keep_default_na=False)
    # A partition is required: the insert fails inside the transaction, and that failure (not a
    # complaint about the aborted transaction) is what the caller sees.
    with pytest.raises(duckdb.ConstraintException, match="_partition"):
        merge_events(con, frame, None)  # type: ignore[arg-type]
    assert len(table(con)) == 2
    assert con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '\\_\\_%' ESCAPE '\\'"
    ).fetchall() == [(0,)]


def test_an_extract_is_read_where_its_files_were_unpacked(tmp_path: Path) -> None:
    """A name with `..` is unpacked inside the folder (zipfile drops the `..`), and read from
    there: never from the place the name points at."""
    import zipfile

    outside = tmp_path / "Opens.csv"
    outside.write_text("not from the extract\n")
    archive = tmp_path / "extract.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../Opens.csv", "from the extract\n")
        zipped.writestr("Sent.csv", "sent\n")
    files = tracking.extract_files(archive, tmp_path / "unpacked")
    assert [f.path.read_text() for f in files] == ["from the extract\n", "sent\n"]
    assert all((tmp_path / "unpacked") in f.path.parents for f in files)
    assert outside.read_text() == "not from the extract\n"
