"""The file the CRM re-imports: unsubscribes, hard bounces, changed contact details, engagement scores.

Written atomically to the CRM inbound location. Text cells that a spreadsheet would
run as a formula (starting with =, @, a tab or a carriage return, or with + or - followed by
more than a number could hold) are neutralised with a leading quote. A phone number such as
+1 503-555-0100, or a negative number, reaches the CRM as it is: a spreadsheet only computes
with it, and a quote in front would be stored by the CRM's import as part of the value.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import duckdb
import fsspec

from nto_etl.warehouse.analytics import EMAIL_ENGAGEMENT, prepare

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER_OR_PHONE = re.compile(r"[+-][0-9 ()./-]*")  # digits and the separators of phone numbers only
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

UPDATES = """
WITH unsubscribes AS (
    SELECT subscriber_key, 'unsubscribe' AS update_type, 'email_opt_out' AS field, NULL AS old_value,
        'true' AS new_value, max(event_date) AS event_date
    FROM tracking_events WHERE event_type = 'Unsubscribe' GROUP BY subscriber_key
),
bounces AS (
    SELECT subscriber_key, 'hard_bounce' AS update_type, 'email_invalid' AS field, NULL AS old_value,
        'true' AS new_value, max(event_date) AS event_date
    FROM tracking_events WHERE event_type = 'HardBounce' GROUP BY subscriber_key
),
changed AS (
    SELECT m.subscriber_key, 'contact_change' AS update_type, f.field, f.old_value, f.new_value,
        NULL::TIMESTAMP AS event_date
    FROM mce_contact_rows m JOIN contacts_latest c USING (subscriber_key),
    LATERAL (VALUES ('email', c.email, m.email), ('first_name', c.first_name, m.first_name),
                    ('last_name', c.last_name, m.last_name), ('phone', c.phone, m.phone)) AS f(field, old_value, new_value)
    WHERE f.new_value IS DISTINCT FROM f.old_value AND f.new_value IS NOT NULL
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
ORDER BY u.update_type, u.subscriber_key, u.field
"""


def neutralise(value: Any) -> Any:
    """A text cell made inert for spreadsheets (OWASP CSV injection guidance)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not NUMBER_OR_PHONE.fullmatch(value):
        return "'" + value
    return value


def ensure_mce_rows_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS mce_contact_rows (subscriber_key VARCHAR, email VARCHAR, first_name VARCHAR, "
        "last_name VARCHAR, phone VARCHAR)"
    )


def write_updates(con: duckdb.DuckDBPyConnection, url: str, **storage_options: Any) -> dict[str, int]:
    """Write the update file to `url` (any fsspec location) atomically; returns rows per update type."""
    prepare(con)
    ensure_mce_rows_table(con)
    con.execute(EMAIL_ENGAGEMENT)
    rows = con.execute(UPDATES).fetchall()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([neutralise(v) for v in row])
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path + ".part", "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
    fs.mv(path + ".part", path)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[2]] = counts.get(row[2], 0) + 1
    return counts
