"""Tracking events into DuckDB: validated against the TrackingEvent contract, merged on their natural key.

Re-reading an overlapping window (late events) or re-running a partition inserts only
events not already there: the merge is idempotent. Files are merged by DuckDB straight from
the CSV: the contract's rules run as a SQL screen (`contracts.screen`) and only rows the
screen does not pass go through pandera. One invalid event fails the whole merge, with the
file, row, column, check and value, and nothing of it is kept.

Two ways to the same table:
- straight, for a partition merged the first time: every file is inserted as it is read (a
  row the screen does not pass stops it), then repeats and events already there from other
  partitions are looked for in what was inserted;
- screened, otherwise (a partition merged again, a refused row, a repeated key): the files
  are screened into a temporary table first, pandera judges the refused rows, and only the
  events not already there are inserted.
And none at all for a partition merged again from the files it was last merged from, read
the same way: their events are all there already (`merged_files`), so none is read.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from nto_etl.contracts import TrackingEvent, de_fields, duckdb_columns
from nto_etl.contracts.screen import Screen, compile_screen
from nto_etl.fingerprints import rules_identity
from nto_etl.mce import rules
from nto_etl.mce.tracking import RENAMES, is_send_jobs_file
from nto_etl.sql import (
    csv_as_text,
    ident,
    insert_frame,
    literal,
    pages,
    registered,
    repeated_hashes,
    scalar,
    transaction,
    unordered_inserts,
)
from nto_etl.staging import validate_chunk
from nto_etl.transfer import sha256_file
from nto_etl.warehouse import merged_files
from nto_etl.warehouse.loads import ensure_table

NATURAL_KEY = ("send_id", "subscriber_key", "event_type", "event_date", "url")
KEY_HASH = f"hash({', '.join(ident(k) for k in NATURAL_KEY)})"
ISO_TEXT = "%Y-%m-%d %H:%M:%S"
# MCE renders extract dates as 11/27/2026 9:30:00 AM; strptime reads them without the '-' flags.
MCE_EXTRACT_DATES = rules.RENDER_DATE_FORMAT.replace("-", "")
MAX_REPORTED = 20


@dataclass(frozen=True)
class EventFile:
    """A CSV of events: its columns named as the contract's, or renamed by `renames`; dates
    ISO 8601, or in `date_format`."""

    path: Path
    renames: Mapping[str, str] = field(default_factory=dict)  # file column -> contract column
    date_format: str | None = None
    date_columns: tuple[str, ...] = ("event_date",)  # the contract's columns in `date_format`


@dataclass(frozen=True)
class MergeResult:
    read: int
    new: int
    by_type: dict[str, int]  # events read, by type
    # "straight", "screened" (see the module's docstring) or "recorded": the partition was merged
    # from the same files before (`merged_files`), so none was read; `read` is what they hold.
    path: str = "screened"


class EventFileError(ValueError):
    """Events that break the contract; nothing of the merge was kept."""

    def __init__(
        self, source: Path, failures: pd.DataFrame, unchecked: int = 0, *, what: str = "events"
    ) -> None:
        shown = failures.head(MAX_REPORTED)
        lines = [f"row {r.row}: {r.column}: {r.check} ({r.value!r})" for r in shown.itertuples()]
        more = f" and {len(failures) - len(shown)} more" if len(failures) > len(shown) else ""
        rest = (
            f" ({unchecked} later rows that need checking were not checked: the merge stopped here)"
            if unchecked
            else ""
        )
        super().__init__(f"{source}: {len(failures)} invalid {what}{more}{rest}: " + "; ".join(lines))
        self.source = source
        self.failures = failures
        self.unchecked = unchecked  # rows after the failing page the screen refused, not judged


def extract_files(archive: Path, into: Path) -> list[EventFile]:
    """The event CSVs of an MCE tracking extract zip (Sent.csv, Opens.csv, ...), unpacked into
    `into`; its SendJobs.csv, which describes sends rather than events, is `send_jobs.send_jobs_file`'s.

    Each file is read where `extract` put it: it drops a name's leading slashes and `..`, so a
    crafted name cannot make the merge read a file outside `into`."""
    paths = unpacked(archive, into, lambda name: not is_send_jobs_file(name))
    return [EventFile(path, RENAMES, MCE_EXTRACT_DATES) for path in paths]


def unpacked(archive: Path, into: Path, wanted: Callable[[str], bool]) -> list[Path]:
    """The CSVs of `archive` whose name in the zip is `wanted`, unpacked into `into`."""
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zipped:
        names = sorted(n for n in zipped.namelist() if n.lower().endswith(".csv") and wanted(n))
        return [Path(zipped.extract(name, into)) for name in names]


def merge_event_files(
    con: duckdb.DuckDBPyConnection, files: Sequence[EventFile], partition: str, *, compare_again: bool = False
) -> MergeResult:
    """Validate every file, then insert the events the warehouse does not have, in one transaction.

    Nothing is inserted unless every event of every file is valid. A partition merged again
    from the same files, read the same way, is recognised (`merged_files`) and nothing is read;
    `compare_again` compares their events all the same (after events were deleted by hand).
    """
    ensure_table(con, "tracking_events", TrackingEvent)
    screen = compile_screen(TrackingEvent)
    assert screen is not None, "TrackingEvent's rules all have a SQL form"
    with ThreadPoolExecutor(2) as pool:  # hashing releases the GIL: it runs beside DuckDB's reading
        digests = [pool.submit(sha256_file, file.path) for file in files]

        def entries() -> list[str]:
            return [
                merged_files.entry(digest.result(), _reading(file, screen))
                for digest, file in zip(digests, files, strict=True)
            ]

        result = None
        if not merged_files.partition_events(con, partition):
            result = _merge_straight(con, files, screen, partition)
        elif not compare_again:
            by_type = merged_files.recorded_by_type(con, partition, entries())
            if by_type is not None:
                return MergeResult(sum(by_type.values()), 0, by_type, "recorded")
        if result is None:
            result = _merge_screened(con, files, screen, partition)
        merged_files.record(con, partition, entries(), result.by_type)
    return result


def _reading(file: EventFile, screen: Screen) -> str:
    """How `file`'s bytes become events: its columns and dates, the contract's rules, the key."""
    return rules_identity(
        json.dumps(sorted(file.renames.items())),
        file.date_format or "",
        ",".join(file.date_columns),
        screen.passes,
        *screen.typed.values(),
        ",".join(NATURAL_KEY),
    )


def _merge_screened(
    con: duckdb.DuckDBPyConnection, files: Sequence[EventFile], screen: Screen, partition: str
) -> MergeResult:
    fields = screen.fields
    names = [f.name for f in fields]
    columns = ", ".join(ident(n) for n in names)
    typed_columns = ", ".join(f"{ident(n)} {t}" for n, t in duckdb_columns(TrackingEvent).items())
    # Validation first, in temporary tables outside the transaction: rowids there are positions in
    # the files (append-only: a file's rows start at the count before it).
    con.execute(f"CREATE OR REPLACE TEMP TABLE __events ({screen.table_columns()})")
    con.execute(f"CREATE OR REPLACE TEMP TABLE __rescued_events ({typed_columns})")
    try:
        for file in files:
            first = scalar(con, "SELECT count(*) FROM __events")
            con.execute(f"INSERT INTO __events {screen.screening(as_contract_text(file, names))}")
            _judge_refused(con, file, screen, first)
        incoming = (
            f"SELECT {columns} FROM __events WHERE __ok UNION ALL SELECT {columns} FROM __rescued_events"
        )
        new = _insert_new_events(con, incoming, partition)
        by_type = con.execute(
            f"SELECT event_type, count(*) FROM ({incoming}) GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS __events; DROP TABLE IF EXISTS __rescued_events")
    counts = {str(k): int(v) for k, v in by_type}
    return MergeResult(sum(counts.values()), new, counts)


REFUSED = "__nto_refused_by_the_screen__"


class _TakeTheScreenedWay(Exception):
    """The straight merge cannot finish; its transaction is rolled back."""


def _merge_straight(
    con: duckdb.DuckDBPyConnection, files: Sequence[EventFile], screen: Screen, partition: str
) -> MergeResult | None:
    """The first merge of `partition`, inserting while reading; None (nothing kept) when a row
    needs pandera or a key repeats, for the screened merge to take over."""
    names = [f.name for f in screen.fields]
    columns = ", ".join(ident(n) for n in names)
    mine = "_partition = $p"
    try:
        with unordered_inserts(con), transaction(con):  # events have no order to keep
            for file in files:
                screened = screen.screening(as_contract_text(file, names))
                con.execute(
                    f"INSERT INTO tracking_events BY NAME SELECT {columns}, $p AS _partition FROM ({screened}) "
                    f"WHERE CASE WHEN __ok THEN true ELSE error('{REFUSED}') END",
                    {"p": partition},
                )
            # What was read, before events other partitions already have are taken out again.
            by_type = con.execute(
                f"SELECT event_type, count(*) FROM tracking_events WHERE {mine} GROUP BY 1 ORDER BY 1",
                {"p": partition},
            ).fetchall()
            if _keys_may_repeat(con, f"SELECT * FROM tracking_events WHERE {mine}", {"p": partition}):
                raise _TakeTheScreenedWay  # the screened merge removes repeats exactly
            _drop_events_known_elsewhere(con, partition)
            new = scalar(con, f"SELECT count(*) FROM tracking_events WHERE {mine}", {"p": partition})
    except _TakeTheScreenedWay:
        return None
    except duckdb.Error as exc:
        if REFUSED in str(exc):
            return None  # pandera judges the refused rows in the screened merge
        raise
    counts = {str(k): int(v) for k, v in by_type}
    return MergeResult(sum(counts.values()), new, counts, "straight")


def _drop_events_known_elsewhere(con: duckdb.DuckDBPyConnection, partition: str) -> None:
    """Remove this partition's new events that another partition already has (an overlapping
    window). Only events dated within the new ones' range are compared."""
    [(first, last)] = con.execute(
        "SELECT min(event_date), max(event_date) FROM tracking_events WHERE _partition = $p", {"p": partition}
    ).fetchall()
    older = "_partition <> $p AND event_date BETWEEN $first AND $last"
    params = {"p": partition, "first": first, "last": last}
    if first is None or not scalar(con, f"SELECT count(*) FROM tracking_events WHERE {older}", params):
        return
    con.execute(
        f"DELETE FROM tracking_events n WHERE n._partition = $p AND EXISTS (SELECT 1 FROM "
        f"(SELECT * FROM tracking_events WHERE {older}) o WHERE {_same_event('o', 'n')})",
        params,
    )


def merge_events(con: duckdb.DuckDBPyConnection, events: pd.DataFrame, partition: str) -> tuple[int, int]:
    """Validate and merge a frame (events retrieved through the API); returns (read, new)."""
    ensure_table(con, "tracking_events", TrackingEvent)
    valid = TrackingEvent.validate(events.replace({"": None}), lazy=True) if not events.empty else events
    if valid.empty:
        return 0, 0
    columns = ", ".join(ident(f.name) for f in de_fields(TrackingEvent))
    with registered(con, "__frame", valid):
        new = _insert_new_events(con, f"SELECT {columns} FROM __frame", partition)
    return len(valid), new


def _insert_new_events(con: duckdb.DuckDBPyConnection, incoming: str, partition: str) -> int:
    """Insert the events of `incoming` (SQL, the contract's columns) not in the warehouse yet, once each.

    The events not there yet are found first (an anti-join on the natural key), so the check
    that none of them repeats reads only those: none at all when the same files come again.
    The anti-join runs one event type at a time: each one's keys fit in memory, where all of
    them at once (tens of millions) would spill to disk and take three times as long. It
    compares only with the events dated within the incoming ones' range, so the months the
    warehouse holds besides are skipped by their row groups' date ranges, not read."""
    key = ", ".join(ident(k) for k in NATURAL_KEY)
    ranges = con.execute(
        f"SELECT event_type, min(event_date), max(event_date) FROM ({incoming}) GROUP BY 1"
    ).fetchall()
    # Created and dropped outside the transaction: a failed statement inside it leaves the
    # transaction unusable, and the error to report is that statement's.
    con.execute(f"CREATE OR REPLACE TEMP TABLE __fresh AS SELECT * FROM ({incoming}) WHERE false")
    try:
        with unordered_inserts(con), transaction(con):  # events have no order to keep
            for event_type, first, last in ranges:
                con.execute(
                    f"INSERT INTO __fresh SELECT * FROM ({incoming}) e WHERE e.event_type = $type AND NOT EXISTS "
                    "(SELECT 1 FROM (SELECT * FROM tracking_events WHERE event_type = $type AND event_date "
                    f"BETWEEN $first AND $last) t WHERE {_same_event('t', 'e')})",
                    {"type": event_type, "first": first, "last": last},
                )
            # Removing repeats costs far more than proving there are none: only when the check
            # finds one (or a hash collision) does the exact de-duplication run.
            repeats = _keys_may_repeat(con, "SELECT * FROM __fresh")
            events = f"(SELECT DISTINCT ON ({key}) * FROM __fresh)" if repeats else "__fresh"
            before = scalar(con, "SELECT count(*) FROM tracking_events")
            con.execute(
                f"INSERT INTO tracking_events BY NAME SELECT *, ? AS _partition FROM {events}", [partition]
            )
            return scalar(con, "SELECT count(*) FROM tracking_events") - before
    finally:
        con.execute("DROP TABLE IF EXISTS __fresh")


def _keys_may_repeat(
    con: duckdb.DuckDBPyConnection, events: str, params: dict[str, object] | None = None
) -> bool:
    """Whether two of `events` (SQL) may share a natural key; False proves that none do. True
    means a repeat, or a hash collision: the caller then removes repeats exactly."""
    return len(repeated_hashes(con, f"SELECT {KEY_HASH} AS h FROM ({events})", params)) > 0


def as_contract_text(file: EventFile, names: list[str]) -> str:
    """SQL reading `file` as text in the contract's columns (absent columns null, dates ISO)."""
    with open(file.path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    source = {file.renames.get(h, h): h for h in header}
    parts = []
    for name in names:
        value = ident(source[name]) if name in source else "NULL::VARCHAR"
        if name in file.date_columns and file.date_format and name in source:
            # Unparseable dates stay as they were, for the contract to refuse by name.
            value = f"coalesce(strftime(try_strptime({value}, {literal(file.date_format)}), '{ISO_TEXT}'), {value})"
        parts.append(f"{value} AS {ident(name)}")
    return f"SELECT {', '.join(parts)} FROM {csv_as_text(file.path, header)}"


# Rows the screen refused, judged by pandera a page at a time: memory stays bounded even when
# a whole file is refused (say, a changed date format).
REFUSED_PAGE_ROWS = 50_000


def _judge_refused(con: duckdb.DuckDBPyConnection, file: EventFile, screen: Screen, first: int) -> None:
    """Rows of `file` the screen did not pass: pandera decides, a page at a time; valid ones are
    kept, and the first page with invalid ones fails the merge."""
    fields = screen.fields
    refused = f"SELECT {screen.as_read()}, rowid - {first} + 1 AS __row FROM __events WHERE rowid >= {first} AND NOT __ok"
    for page in pages(con, refused, REFUSED_PAGE_ROWS):
        page["__line"] = page.index + 1
        valid, rejects = validate_chunk(page, TrackingEvent, fields)
        if not rejects.empty:
            unchecked = scalar(
                con, f"SELECT count(*) FROM ({refused}) WHERE __row > ?", [int(page.index[-1])]
            )
            raise EventFileError(file.path, rejects.reset_index(drop=True), unchecked)
        insert_frame(con, "__rescued_events", valid, [f.name for f in fields])


def _same_event(a: str, b: str) -> str:
    return " AND ".join(f"{a}.{ident(c)} IS NOT DISTINCT FROM {b}.{ident(c)}" for c in NATURAL_KEY)
