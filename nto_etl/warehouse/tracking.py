"""Tracking events into DuckDB: validated against the TrackingEvent contract, merged on their natural key.

Re-reading an overlapping window (late events) or re-running a partition inserts only
events not already there: the merge is idempotent.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from nto_etl.contracts import TrackingEvent
from nto_etl.warehouse.loads import ensure_table

NATURAL_KEY = ("send_id", "subscriber_key", "event_type", "event_date", "url")


def merge_events(con: duckdb.DuckDBPyConnection, events: pd.DataFrame, partition: str) -> tuple[int, int]:
    """Validate and merge; returns (events read, events new to the warehouse)."""
    ensure_table(con, "tracking_events", TrackingEvent)
    valid = TrackingEvent.validate(events.replace({"": None}), lazy=True) if not events.empty else events
    if valid.empty:
        return 0, 0
    valid = valid.drop_duplicates(subset=list(NATURAL_KEY))
    con.register("__events", valid)
    match = " AND ".join(f"t.{c} IS NOT DISTINCT FROM e.{c}" for c in NATURAL_KEY)
    columns = ", ".join(valid.columns)
    con.execute("BEGIN TRANSACTION")
    try:
        before = con.execute("SELECT count(*) FROM tracking_events").fetchall()[0]
        con.execute(
            f"INSERT INTO tracking_events ({columns}, _partition) SELECT {', '.join('e.' + c for c in valid.columns)}, ? "
            f"FROM __events e WHERE NOT EXISTS (SELECT 1 FROM tracking_events t WHERE {match})",
            [partition],
        )
        after = con.execute("SELECT count(*) FROM tracking_events").fetchall()[0]
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("__events")
    con.execute("COMMIT")
    return len(valid), int(after[0]) - int(before[0])
