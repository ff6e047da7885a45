"""Tracking events into DuckDB: validated against the TrackingEvent contract, merged on their natural key.

Re-reading an overlapping window (late events) or re-running a partition inserts only
events not already there: the merge is idempotent. Files are merged by DuckDB straight from
the CSV: the contract's rules run as a SQL screen (`contracts.screen`) and only rows the
screen does not pass go through pandera. One invalid event fails the whole merge, with the
file, row, column, check and value, and nothing of it is kept.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from nto_etl.contracts import TrackingEvent, de_fields, duckdb_columns
from nto_etl.contracts.screen import Screen, compile_screen
from nto_etl.mce import rules
from nto_etl.mce.tracking import RENAMES
from nto_etl.sql import ident, literal, transaction
from nto_etl.staging import validate_chunk
from nto_etl.warehouse.loads import ensure_table

NATURAL_KEY = ("send_id", "subscriber_key", "event_type", "event_date", "url")
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


@dataclass(frozen=True)
class MergeResult:
    read: int
    new: int
    by_type: dict[str, int]


class EventFileError(ValueError):
    """Events that break the contract; nothing of the merge was kept."""

    def __init__(self, source: Path, failures: pd.DataFrame) -> None:
        shown = failures.head(MAX_REPORTED)
        lines = [f"row {r.row}: {r.column}: {r.check} ({r.value!r})" for r in shown.itertuples()]
        more = f" and {len(failures) - len(shown)} more" if len(failures) > len(shown) else ""
        super().__init__(f"{source}: {len(failures)} invalid events{more}: " + "; ".join(lines))
        self.source = source
        self.failures = failures


def extract_files(archive: Path, into: Path) -> list[EventFile]:
    """The CSVs of an MCE tracking extract zip (Sent.csv, Opens.csv, ...), unpacked into `into`."""
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zipped:
        names = [n for n in zipped.namelist() if n.lower().endswith(".csv")]
        for name in names:
            zipped.extract(name, into)
    return [EventFile(into / n, RENAMES, MCE_EXTRACT_DATES) for n in sorted(names)]


def merge_event_files(
    con: duckdb.DuckDBPyConnection, files: Sequence[EventFile], partition: str
) -> MergeResult:
    """Validate every file, then insert the events the warehouse does not have, in one transaction.

    Nothing is inserted unless every event of every file is valid.
    """
    ensure_table(con, "tracking_events", TrackingEvent)
    fields = de_fields(TrackingEvent)
    screen = compile_screen(TrackingEvent)
    assert screen is not None, "TrackingEvent's rules all have a SQL form"
    names = [f.name for f in fields]
    columns = ", ".join(ident(n) for n in names)
    typed_columns = ", ".join(f"{ident(n)} {t}" for n, t in duckdb_columns(TrackingEvent).items())
    # Validation first, in temporary tables outside the transaction: rowids there are positions in
    # the files (append-only: a file's rows start at the count before it).
    con.execute(f"CREATE OR REPLACE TEMP TABLE __events ({screen.table_columns()})")
    con.execute(f"CREATE OR REPLACE TEMP TABLE __rescued_events ({typed_columns})")
    try:
        for file in files:
            first = _count(con, "SELECT count(*) FROM __events")
            con.execute(f"INSERT INTO __events {screen.screening(_as_contract_text(file, names))}")
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


def merge_events(con: duckdb.DuckDBPyConnection, events: pd.DataFrame, partition: str) -> tuple[int, int]:
    """Validate and merge a frame (events retrieved through the API); returns (read, new)."""
    ensure_table(con, "tracking_events", TrackingEvent)
    valid = TrackingEvent.validate(events.replace({"": None}), lazy=True) if not events.empty else events
    if valid.empty:
        return 0, 0
    con.register("__frame", valid)
    try:
        columns = ", ".join(ident(f.name) for f in de_fields(TrackingEvent))
        new = _insert_new_events(con, f"SELECT {columns} FROM __frame", partition)
    finally:
        con.unregister("__frame")
    return len(valid), new


def _insert_new_events(con: duckdb.DuckDBPyConnection, incoming: str, partition: str) -> int:
    """Insert the events of `incoming` (SQL, the contract's columns) not in the warehouse yet, once each."""
    key = ", ".join(ident(k) for k in NATURAL_KEY)
    # Equal keys hash equal, so as many distinct hashes as rows proves no key repeats, for a
    # fraction of what removing repeats costs; otherwise (a repeat, or a hash collision) the
    # exact de-duplication runs.
    [(unique,)] = con.execute(f"SELECT count(*) = count(DISTINCT hash({key})) FROM ({incoming})").fetchall()
    events = f"({incoming})" if unique else f"(SELECT DISTINCT ON ({key}) * FROM ({incoming}))"
    with transaction(con):
        before = _count(con, "SELECT count(*) FROM tracking_events")
        con.execute(
            f"INSERT INTO tracking_events SELECT *, ? FROM {events} e "
            f"WHERE NOT EXISTS (SELECT 1 FROM tracking_events t WHERE {_same_event('t', 'e')})",
            [partition],
        )
        return _count(con, "SELECT count(*) FROM tracking_events") - before


def _as_contract_text(file: EventFile, names: list[str]) -> str:
    """SQL reading `file` as text in the contract's columns (absent columns null, dates ISO)."""
    with open(file.path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    source = {file.renames.get(h, h): h for h in header}
    parts = []
    for name in names:
        value = ident(source[name]) if name in source else "NULL::VARCHAR"
        if name == "event_date" and file.date_format and name in source:
            # Unparseable dates stay as they were, for the contract to refuse by name.
            value = f"coalesce(strftime(try_strptime({value}, {literal(file.date_format)}), '{ISO_TEXT}'), {value})"
        parts.append(f"{value} AS {ident(name)}")
    as_text = "{" + ", ".join(f"{literal(h)}: 'VARCHAR'" for h in header) + "}"
    return (
        f"SELECT {', '.join(parts)} FROM read_csv({literal(file.path)}, header = true, columns = {as_text}, "
        "auto_detect = false, delim = ',', quote = '\"', escape = '\"', strict_mode = true, "
        "allow_quoted_nulls = true)"
    )


def _judge_refused(con: duckdb.DuckDBPyConnection, file: EventFile, screen: Screen, first: int) -> None:
    """Rows of `file` the screen did not pass: pandera decides; valid ones are kept, invalid ones fail the merge."""
    fields = screen.fields
    as_read = screen.as_read()
    refused = (
        con.sql(
            f"SELECT {as_read}, rowid - {first} + 1 AS __row FROM __events WHERE rowid >= {first} AND NOT __ok"
        )
        .to_arrow_table()
        .to_pandas()
    )
    if refused.empty:
        return
    refused.index = pd.Index(refused.pop("__row").to_numpy(dtype="int64"))
    refused["__line"] = refused.index + 1
    valid, rejects = validate_chunk(refused, TrackingEvent, fields)
    if not rejects.empty:
        raise EventFileError(file.path, rejects.reset_index(drop=True))
    con.register("__rescued", valid)
    try:
        names = ", ".join(ident(f.name) for f in fields)
        con.execute(f"INSERT INTO __rescued_events SELECT {names} FROM __rescued")
    finally:
        con.unregister("__rescued")


def _same_event(a: str, b: str) -> str:
    return " AND ".join(f"{a}.{ident(c)} IS NOT DISTINCT FROM {b}.{ident(c)}" for c in NATURAL_KEY)


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> int:
    rows = con.execute(sql, params or []).fetchall()
    return int(rows[0][0]) if rows else 0
