"""Which files each tracking partition was last merged from, so that merging them again reads none of them.

A merge compares every incoming event with the events already in the warehouse, on the
natural key: for 10M events against 10M that costs more than the first merge, which inserts
as it reads. But when a partition is merged again from the very files it was merged from
(a re-run, a backfill over days already loaded), the answer is known without comparing: every
event of those files was in the warehouse when that merge committed, and the pipeline never
removes an event. So, as a warehouse skips files it has loaded before, the merge records each
partition's files and recognises them:

    record(con, "2026-11-27", entries, by_type)             # after the merge committed
    recorded_by_type(con, "2026-11-27", entries)            # the same files again: their counts

A file is an entry: its SHA-256 and how it was read (`reading`: the contract's rules, the
column names and date format of the file, the natural key and the library versions). Other
files, or the same ones read another way, are merged in full. So is a partition whose event
count is no longer the one recorded: events of it were deleted (or added by another way),
and a full merge puts back what its files hold.

What it cannot see: events deleted by hand from another partition, which a full merge of
these files would insert here. After such a deletion, merge with `compare_again` (the
`tracking_events` asset's config), or delete the partition's row of `tracking_merged_files`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import duckdb

from nto_etl.sql import scalar

TABLE = "tracking_merged_files"


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (_partition VARCHAR PRIMARY KEY, files VARCHAR[] NOT NULL, "
        "by_type VARCHAR NOT NULL, partition_events BIGINT NOT NULL, merged_at TIMESTAMP NOT NULL)"
    )


def entry(sha256: str, reading: str) -> str:
    """A file as recorded: its content and how it was read."""
    return f"{sha256} {reading}"


def record(
    con: duckdb.DuckDBPyConnection, partition: str, entries: Sequence[str], by_type: dict[str, int]
) -> None:
    """After a merge of `partition` from the files `entries` committed: every event they hold
    (`by_type`, counted by type) is in the warehouse, and the partition holds what it holds now."""
    ensure_table(con)
    con.execute(
        f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
        [partition, sorted(entries), json.dumps(by_type, sort_keys=True), partition_events(con, partition)],
    )


def recorded_by_type(
    con: duckdb.DuckDBPyConnection, partition: str, entries: Sequence[str]
) -> dict[str, int] | None:
    """The events by type of the files `entries`, when `partition` was last merged from exactly
    these files and still holds the events it held then; None otherwise (merge in full)."""
    ensure_table(con)
    found = con.execute(
        f"SELECT files, by_type, partition_events FROM {TABLE} WHERE _partition = ?", [partition]
    ).fetchall()
    if not found:
        return None
    [(files, by_type, events)] = found
    if sorted(files) != sorted(entries) or partition_events(con, partition) != events:
        return None
    return {str(k): int(v) for k, v in json.loads(by_type).items()}


def partition_events(con: duckdb.DuckDBPyConnection, partition: str) -> int:
    """The events `partition` holds in `tracking_events`."""
    return scalar(con, "SELECT count(*) FROM tracking_events WHERE _partition = ?", [partition])
