"""Analytics tables, rebuilt from the loaded data in one statement each (idempotent by construction).

Each is a CREATE OR REPLACE over the warehouse's base tables; tables a step needs but
that nothing has loaded yet are created empty first, so an analyst can always query.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from nto_etl.contracts import Contact, PageView, SendJob, TrackingEvent
from nto_etl.sql import ident, scalar
from nto_etl.warehouse.loads import ensure_table

BASE_TABLES = {
    "crm_contacts": Contact,
    "web_page_views": PageView,
    "tracking_events": TrackingEvent,
    "send_jobs": SendJob,
}

LATEST_CONTACTS = """
CREATE OR REPLACE VIEW contacts_latest AS
SELECT * EXCLUDE (_partition) FROM crm_contacts
QUALIFY row_number() OVER (PARTITION BY subscriber_key ORDER BY modified_at DESC, _partition DESC) = 1
"""

EMAIL_ENGAGEMENT = """
CREATE OR REPLACE TABLE email_engagement AS
WITH events AS (SELECT DISTINCT send_id, subscriber_key, event_type, event_date, url FROM tracking_events)
SELECT subscriber_key,
    count(*) FILTER (WHERE event_type = 'Sent') AS sent,
    count(DISTINCT send_id) FILTER (WHERE event_type = 'Open') AS opened_sends,
    count(*) FILTER (WHERE event_type = 'Open') AS opens,
    count(*) FILTER (WHERE event_type = 'Click') AS clicks,
    count(*) FILTER (WHERE event_type LIKE '%Bounce') AS bounces,
    bool_or(event_type = 'Unsubscribe') AS unsubscribed,
    max(event_date) FILTER (WHERE event_type IN ('Open', 'Click')) AS last_engaged_at,
    round(100 * least(1.0, (count(DISTINCT send_id) FILTER (WHERE event_type = 'Open')
        + 2 * count(DISTINCT send_id) FILTER (WHERE event_type = 'Click'))
        / greatest(1, 3 * count(*) FILTER (WHERE event_type = 'Sent'))), 1) AS engagement_score
FROM events GROUP BY subscriber_key
"""

CAMPAIGN_PERFORMANCE = """
CREATE OR REPLACE TABLE campaign_performance AS
WITH events AS (SELECT DISTINCT send_id, subscriber_key, event_type, event_date, url FROM tracking_events),
per_send AS (
    SELECT send_id,
        count(DISTINCT subscriber_key) FILTER (WHERE event_type = 'Sent') AS sent,
        count(DISTINCT subscriber_key) FILTER (WHERE event_type LIKE '%Bounce') AS bounced,
        count(DISTINCT subscriber_key) FILTER (WHERE event_type = 'Open') AS unique_opens,
        count(DISTINCT subscriber_key) FILTER (WHERE event_type = 'Click') AS unique_clicks,
        count(DISTINCT subscriber_key) FILTER (WHERE event_type = 'Unsubscribe') AS unsubscribes,
        min(event_date) FILTER (WHERE event_type = 'Sent') AS sent_at
    FROM events GROUP BY send_id
)
SELECT send_id, j.email_name, j.subject, sent_at, sent, sent - bounced AS delivered, unique_opens, unique_clicks,
    bounced, unsubscribes,
    round(100.0 * (sent - bounced) / nullif(sent, 0), 2) AS delivery_rate,
    round(100.0 * unique_opens / nullif(sent - bounced, 0), 2) AS open_rate,
    round(100.0 * unique_clicks / nullif(sent - bounced, 0), 2) AS click_rate,
    round(100.0 * bounced / nullif(sent, 0), 2) AS bounce_rate,
    round(100.0 * unsubscribes / nullif(sent - bounced, 0), 2) AS unsubscribe_rate
FROM per_send LEFT JOIN send_jobs j USING (send_id) ORDER BY send_id
"""

ENGAGEMENT_BY_REGION = """
CREATE OR REPLACE TABLE engagement_by_region AS
SELECT coalesce(c.state, '(unknown)') AS state, count(*) AS subscribers,
    sum(coalesce(e.sent, 0)) AS sent, sum(coalesce(e.opens, 0)) AS opens, sum(coalesce(e.clicks, 0)) AS clicks,
    round(100.0 * count(*) FILTER (WHERE e.opened_sends > 0) / nullif(count(*) FILTER (WHERE e.sent > 0), 0), 2)
        AS share_opening
FROM contacts_latest c LEFT JOIN email_engagement e USING (subscriber_key)
GROUP BY ALL ORDER BY subscribers DESC
"""

# A page view is a contact's when its customer id or its email hash is the contact's. Two equi-joins
# whose union drops the pairs both found: a join ON a = b OR c = d is a nested loop in DuckDB,
# every view against every contact (80k of each took 27 s, growing with the square).
CUSTOMER_360 = """
CREATE OR REPLACE TABLE customer_360 AS
WITH keys AS (SELECT subscriber_key, customer_id, sha256(lower(email)) AS email_sha256 FROM contacts_latest),
viewed AS (
    SELECT k.subscriber_key, v.rowid AS view FROM web_page_views v JOIN keys k USING (customer_id)
    UNION
    SELECT k.subscriber_key, v.rowid AS view FROM web_page_views v JOIN keys k USING (email_sha256)
),
web AS (
    SELECT m.subscriber_key, count(*) AS page_views, count(DISTINCT v.session_id) AS sessions,
        max(v.viewed_at) AS last_visit_at,
        count(*) FILTER (WHERE v.utm_medium = 'email') AS views_from_email
    FROM viewed m JOIN web_page_views v ON v.rowid = m.view
    GROUP BY m.subscriber_key
)
SELECT c.customer_id, c.subscriber_key, c.email, c.first_name, c.last_name, c.city, c.state, c.country, c.locale,
    c.created_at, c.modified_at,
    coalesce(e.sent, 0) AS emails_sent, coalesce(e.opens, 0) AS email_opens, coalesce(e.clicks, 0) AS email_clicks,
    coalesce(e.unsubscribed, false) AS unsubscribed, coalesce(e.engagement_score, 0) AS engagement_score,
    e.last_engaged_at, coalesce(w.page_views, 0) AS page_views, coalesce(w.sessions, 0) AS web_sessions,
    coalesce(w.views_from_email, 0) AS web_views_from_email, w.last_visit_at
FROM contacts_latest c
LEFT JOIN email_engagement e USING (subscriber_key)
LEFT JOIN web w USING (subscriber_key)
"""

STATEMENTS = {
    "email_engagement": EMAIL_ENGAGEMENT,
    "campaign_performance": CAMPAIGN_PERFORMANCE,
    "engagement_by_region": ENGAGEMENT_BY_REGION,
    "customer_360": CUSTOMER_360,
}


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    for table, model in BASE_TABLES.items():
        ensure_table(con, table, model)
    con.execute(LATEST_CONTACTS)


def build(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """(Re)build one analytics table; returns its row count."""
    prepare(con)
    if table in ("engagement_by_region", "customer_360"):
        con.execute(EMAIL_ENGAGEMENT)
    con.execute(STATEMENTS[table])
    return scalar(con, f"SELECT count(*) FROM {ident(table)}")


@dataclass(frozen=True)
class TableCheck:
    """A rule a rebuilt table must keep; `violations` selects the rows that break it."""

    name: str
    description: str
    violations: str
    blocking: bool = True  # a broken rule is an error (False: a warning, the table is still right)


ONE_ROW_PER = "SELECT {key}, count(*) AS copies FROM {table} GROUP BY {key} HAVING count(*) > 1"
CHECKS: dict[str, tuple[TableCheck, ...]] = {
    "email_engagement": (
        TableCheck(
            "one_row_per_subscriber",
            "No subscriber appears twice.",
            ONE_ROW_PER.format(key="subscriber_key", table="email_engagement"),
        ),
    ),
    "campaign_performance": (
        TableCheck(
            "rates_are_shares",
            "Each send's delivered is at most its sent, and its unique opens, clicks and unsubscribes at "
            "most its delivered. A send breaking it lacks Sent events: the tracking partitions of its "
            "send day are not merged yet, and its rates would mislead.",
            "SELECT send_id, sent, delivered, unique_opens, unique_clicks, unsubscribes FROM campaign_performance "
            "WHERE delivered < 0 OR unique_opens > delivered OR unique_clicks > delivered "
            "OR unsubscribes > delivered",
            blocking=False,
        ),
        TableCheck(
            "sends_are_named",
            "Each send has its email name, from the tracking extract's send jobs. A send without one "
            "has its send day's tracking partition not merged yet (or the extract had no SendJobs.csv): "
            "it cannot be told from the other sends by its email.",
            "SELECT send_id, sent_at, sent FROM campaign_performance WHERE email_name IS NULL",
            blocking=False,
        ),
    ),
    "engagement_by_region": (
        TableCheck(
            "one_row_per_state",
            "No state appears twice.",
            ONE_ROW_PER.format(key="state", table="engagement_by_region"),
        ),
    ),
    "customer_360": (
        TableCheck(
            "one_row_per_contact",
            "Every contact (the CRM's latest version of each) appears exactly once.",
            ONE_ROW_PER.format(key="subscriber_key", table="customer_360")
            + " UNION ALL SELECT subscriber_key, 0 AS copies FROM contacts_latest "
            "ANTI JOIN customer_360 USING (subscriber_key)",
        ),
    ),
}


def violations(
    con: duckdb.DuckDBPyConnection, check: TableCheck, shown: int = 5
) -> tuple[int, list[dict[str, object]]]:
    """How many rows break `check`, and the first `shown` of them."""
    count = scalar(con, f"SELECT count(*) FROM ({check.violations})")
    cursor = con.execute(f"SELECT * FROM ({check.violations}) LIMIT {int(shown)}")
    names = [d[0] for d in cursor.description or []]
    return count, [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
