"""The file the CRM re-imports: unsubscribes, hard bounces, changed contact details, engagement scores.

A contact detail counts as changed in MCE only where MCE holds the CRM's latest version of
the row (the same modified time) with a different value. Where MCE holds an older version
(its import refused the row, or the day's sync has not run), the difference is the CRM's
own newer change: sending MCE's value back would undo it, so it is held back and counted.
Likewise a hard bounce flags the contact's email invalid only if it is of the current address.
Where the CRM replaced the address, a bounce counts only after the first version that shows
the current one: a bounce of the replaced address says nothing of the new one, and flagging a
good address invalid stops mail to it, so a bounce that may be of either is not sent. (Bounce
times are MCE's, versions the CRM's: a bounce within hours of the change may fall on either side.)

Written atomically to the CRM inbound location. Text cells that a spreadsheet would
run as a formula (starting with =, @, a tab or a carriage return, or with + or - followed by
more than a number could hold) are neutralised with a leading quote. A phone number such as
+1 503-555-0100, or a negative number, reaches the CRM as it is: a spreadsheet only computes
with it, and a quote in front would be stored by the CRM's import as part of the value.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from nto_etl import transfer
from nto_etl.csv_writer import write_csv
from nto_etl.mce.rules import date_parse_sql
from nto_etl.sql import ident, literal, scalar, transaction
from nto_etl.warehouse.analytics import EMAIL_ENGAGEMENT, prepare

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER_OR_PHONE = r"[+-][0-9 ()./-]*"  # digits and the separators of phone numbers only
FILE_ORDER = "update_type, subscriber_key, field"
SCORE = "CAST(engagement_score AS DECIMAL(4, 1)) AS engagement_score"  # 0.0 to 100.0, as in new_value
# What `mce_contact_rows` keeps of each contact in MCE: the details compared, and the version.
MCE_ROW_COLUMNS = ["subscriber_key", "email", "first_name", "last_name", "phone", "modified_at"]
COLUMNS = [
    "subscriber_key",
    "customer_id",
    "update_type",
    "field",
    "old_value",
    "new_value",
    "event_date",
    "engagement_score",
]

# MCE's modified time (text, as Retrieve renders a Date) as the CRM's TIMESTAMP.
MCE_VERSION = date_parse_sql("m.modified_at")
DIFFERENCES = f"""
SELECT m.subscriber_key, f.field, f.old_value, f.new_value,
    coalesce({MCE_VERSION} = c.modified_at, false) AS same_version
FROM mce_contact_rows m JOIN contacts_latest c USING (subscriber_key),
LATERAL (VALUES ('email', c.email, m.email), ('first_name', c.first_name, m.first_name),
                ('last_name', c.last_name, m.last_name), ('phone', c.phone, m.phone)) AS f(field, old_value, new_value)
WHERE f.new_value IS DISTINCT FROM f.old_value AND f.new_value IS NOT NULL
"""
# Per contact whose address the CRM replaced (case aside): the last version with another
# address, and the first one after it with the current address.
HARD_BOUNCES = """
WITH replaced AS (
    SELECT h.subscriber_key, max(h.modified_at) AS replaced_at
    FROM crm_contacts h JOIN contacts_latest l USING (subscriber_key)
    WHERE lower(h.email) IS DISTINCT FROM lower(l.email)
    GROUP BY h.subscriber_key
),
current_since AS (
    SELECT h.subscriber_key, min(h.modified_at) AS since
    FROM crm_contacts h JOIN contacts_latest l USING (subscriber_key) JOIN replaced r USING (subscriber_key)
    WHERE lower(h.email) = lower(l.email) AND h.modified_at > r.replaced_at
    GROUP BY h.subscriber_key
)
SELECT t.subscriber_key, t.event_date,
    CASE WHEN r.replaced_at IS NULL THEN true ELSE coalesce(t.event_date > c.since, false) END AS of_current_email
FROM tracking_events t LEFT JOIN replaced r USING (subscriber_key) LEFT JOIN current_since c USING (subscriber_key)
WHERE t.event_type = 'HardBounce'
"""
UPDATES = """
WITH unsubscribes AS (
    SELECT subscriber_key, 'unsubscribe' AS update_type, 'email_opt_out' AS field, NULL AS old_value,
        'true' AS new_value, max(event_date) AS event_date
    FROM tracking_events WHERE event_type = 'Unsubscribe' GROUP BY subscriber_key
),
bounces AS (
    SELECT subscriber_key, 'hard_bounce' AS update_type, 'email_invalid' AS field, NULL AS old_value,
        'true' AS new_value, max(event_date) AS event_date
    FROM __hard_bounces WHERE of_current_email GROUP BY subscriber_key
),
changed AS (
    SELECT subscriber_key, 'contact_change' AS update_type, field, old_value, new_value,
        NULL::TIMESTAMP AS event_date
    FROM __contact_differences WHERE same_version
),
scores AS (
    SELECT subscriber_key, 'engagement_score' AS update_type, 'engagement_score' AS field, NULL AS old_value,
        CAST(engagement_score AS VARCHAR) AS new_value, last_engaged_at AS event_date
    FROM email_engagement WHERE sent > 0
)
SELECT u.subscriber_key, c.customer_id, u.update_type, u.field, u.old_value, u.new_value,
    strftime(u.event_date, '%Y-%m-%d %H:%M:%S') AS event_date, e.engagement_score
FROM (SELECT * FROM unsubscribes UNION ALL SELECT * FROM bounces UNION ALL SELECT * FROM changed
      UNION ALL SELECT * FROM scores) u
LEFT JOIN contacts_latest c USING (subscriber_key)
LEFT JOIN email_engagement e USING (subscriber_key)
"""


def neutralised(text: str) -> str:
    """SQL of the text `text` made inert for spreadsheets (OWASP CSV injection guidance)."""
    starts = ", ".join(literal(c) for c in FORMULA_STARTS)
    return (
        f"CASE WHEN left({text}, 1) IN ({starts}) AND NOT regexp_full_match({text}, {literal(NUMBER_OR_PHONE)}) "
        f"THEN '''' || {text} ELSE {text} END"
    )


@dataclass(frozen=True)
class UpdatesWritten:
    rows: dict[str, int]  # rows per update type
    held_back: int  # contact details that differ where MCE holds an older version of the row
    earlier_email_bounces: int  # contacts whose every hard bounce predates their current email


def ensure_mce_rows_table(con: duckdb.DuckDBPyConnection) -> None:
    """The table, with the modified time a table made by an earlier version lacks."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS mce_contact_rows ("
        + ", ".join(f"{c} VARCHAR" for c in MCE_ROW_COLUMNS)
        + ")"
    )
    con.execute("ALTER TABLE mce_contact_rows ADD COLUMN IF NOT EXISTS modified_at VARCHAR")


def save_mce_rows(pages: Iterable[pd.DataFrame], path: Path) -> int:
    """Retrieve pages into a Parquet file, page by page (memory stays one page): MCE's answers
    can take minutes, and the warehouse is not to be held open while they come."""
    schema = pa.schema([(c, pa.string()) for c in MCE_ROW_COLUMNS])
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for page in pages:
            writer.write_table(
                pa.Table.from_pandas(page[MCE_ROW_COLUMNS], schema=schema, preserve_index=False)
            )
            rows += len(page)
    return rows


def replace_mce_rows(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """MCE's contact rows saved by `save_mce_rows` become `mce_contact_rows`, in one transaction."""
    ensure_mce_rows_table(con)
    columns = ", ".join(MCE_ROW_COLUMNS)
    with transaction(con):
        con.execute("DELETE FROM mce_contact_rows")
        con.execute(
            f"INSERT INTO mce_contact_rows ({columns}) SELECT {columns} FROM read_parquet($path)",
            {"path": str(path)},
        )
    return scalar(con, "SELECT count(*) FROM mce_contact_rows")


def write_updates(con: duckdb.DuckDBPyConnection, url: str, **storage_options: Any) -> UpdatesWritten:
    """Write the update file to `url` (any fsspec location) atomically."""
    prepare(con)
    ensure_mce_rows_table(con)
    con.execute(EMAIL_ENGAGEMENT)
    # Each computed once: the file takes what goes back, the counts what is held back.
    con.execute(f"CREATE OR REPLACE TEMP TABLE __contact_differences AS {DIFFERENCES}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE __hard_bounces AS {HARD_BOUNCES}")
    # Kept by DuckDB (within its memory limit, spilling beyond) and streamed to the file: an
    # engagement score for each of millions of contacts never sits in Python's memory.
    con.execute(f"CREATE OR REPLACE TEMP TABLE __updates AS {UPDATES}")
    cells = ", ".join(
        SCORE if c == "engagement_score" else f"{neutralised(ident(c))} AS {ident(c)}" for c in COLUMNS
    )
    _write_atomically(con, f"SELECT {cells} FROM __updates ORDER BY {FILE_ORDER}", url, storage_options)
    kinds = con.execute("SELECT update_type, count(*) FROM __updates GROUP BY ALL").fetchall()
    counts = {str(kind): int(n) for kind, n in kinds}
    held_back = scalar(con, "SELECT count(*) FROM __contact_differences WHERE NOT same_version")
    earlier = scalar(
        con,
        "SELECT count(*) FROM (SELECT subscriber_key FROM __hard_bounces "
        "GROUP BY subscriber_key HAVING NOT bool_or(of_current_email))",
    )
    return UpdatesWritten(counts, held_back, earlier)


def _write_atomically(
    con: duckdb.DuckDBPyConnection, query: str, url: str, storage_options: dict[str, Any]
) -> None:
    """The file appears at `url` whole or not at all: the CRM may pick it up at any moment."""
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        write_csv(con, query, Path(path), eol="\r\n")  # written beside, then renamed into place
        return
    with tempfile.TemporaryDirectory(prefix="nto-updates-") as tmp:
        local = Path(tmp) / "updates.csv"
        write_csv(con, query, local, eol="\r\n")
        transfer.upload_atomic(fs, local, path)
