"""Simulated sends and the tracking data they produce, with MCE's data views.

A send to a sendable data extension writes a SentEvent per subscriber and, from a
seeded random model, the opens, clicks, bounces and unsubscribes of the following
days. Each event carries when it happened (`event_date`, MCE server time) and when it
becomes visible (`visible_at`): most within minutes, some up to an hour late, so an
overlapping re-read picks them up. Same seed, same events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from nto_etl.mce_local.dataext import DataExtensions, fields_of, table_name
from nto_etl.mce_local.fieldtypes import q
from nto_etl.mce_local.store import Store

DDL = """
CREATE TABLE IF NOT EXISTS tracking_events (
    event_type VARCHAR NOT NULL, send_id BIGINT NOT NULL, subscriber_key VARCHAR NOT NULL,
    email VARCHAR, event_date TIMESTAMP NOT NULL, visible_at TIMESTAMP NOT NULL, url VARCHAR,
    bounce_category VARCHAR, smtp_code VARCHAR, smtp_reason VARCHAR, batch_id BIGINT, is_unique BOOLEAN
);
CREATE TABLE IF NOT EXISTS sends (
    send_id BIGINT PRIMARY KEY, definition_key VARCHAR, subject VARCHAR, de_key VARCHAR, sent_at TIMESTAMP,
    recipients BIGINT, seed BIGINT
);
CREATE TABLE IF NOT EXISTS subscribers (
    subscriber_key VARCHAR PRIMARY KEY, email VARCHAR, status VARCHAR, created_at TIMESTAMP,
    unsubscribed_at TIMESTAMP
);
CREATE SEQUENCE IF NOT EXISTS send_seq START 90000;
"""

EVENT_TYPES = {
    "SentEvent": "Sent",
    "OpenEvent": "Open",
    "ClickEvent": "Click",
    "BounceEvent": "Bounce",
    "UnsubEvent": "Unsubscribe",
}
URLS = [
    "https://www.nto.example/newsletter",
    "https://www.nto.example/sale",
    "https://www.nto.example/events",
    "https://www.nto.example/tents?utm_medium=email",
    "https://www.nto.example/stores",
]
BOUNCES = [
    ("Hard bounce", "550", "5.1.1 user unknown"),
    ("Soft bounce", "452", "4.2.2 mailbox full"),
    ("Block bounce", "554", "5.7.1 blocked"),
]


@dataclass(frozen=True)
class Behaviour:
    """Rates of the simulated audience (per recipient, per send)."""

    bounce: float = 0.03
    hard_share: float = 0.5
    open: float = 0.35
    click_given_open: float = 0.3
    unsubscribe_given_open: float = 0.02
    late_share: float = 0.1  # events that arrive up to an hour after they happened


class Tracking:
    def __init__(self, store: Store, des: DataExtensions) -> None:
        self.store = store
        self.des = des
        with store.connection() as con:
            con.execute(DDL)

    def send(
        self,
        de: dict,
        *,
        definition_key: str,
        subject: str,
        sent_at: datetime,
        seed: int,
        behaviour: Behaviour = Behaviour(),
    ) -> tuple[int, int]:
        """Send to every row of a sendable DE; returns (send id, recipients)."""
        if not de.get("IsSendable"):
            raise ValueError(f"data extension {de['Name']} is not sendable")
        key_field = de["SendableDataExtensionField"]
        email_field = next((f.name for f in fields_of(de) if f.field_type == "EmailAddress"), None)
        email = q(email_field) if email_field else "NULL"
        with self.store.connection() as con:
            audience = con.execute(
                f"SELECT CAST({q(key_field)} AS VARCHAR), {email} FROM {table_name(de)} ORDER BY 1"
            ).fetchall()
            send_row = con.execute("SELECT nextval('send_seq')").fetchone()
        assert send_row is not None
        send_id = int(send_row[0])
        sent_at = sent_at.replace(microsecond=0)  # MCE keeps event times to the second
        keys = [a[0] for a in audience]
        emails = [a[1] for a in audience]
        events = simulate(send_id, keys, emails, sent_at, seed, behaviour)
        with self.store.transaction() as con:
            con.execute(
                "INSERT INTO sends VALUES (?, ?, ?, ?, ?, ?, ?)",
                [send_id, definition_key, subject, de["CustomerKey"], sent_at, len(keys), seed],
            )
            if not events.empty:
                con.register("__events", events)
                con.execute("INSERT INTO tracking_events SELECT * FROM __events")
                con.unregister("__events")
            con.execute(
                "INSERT INTO subscribers SELECT DISTINCT ON (k) k, e, 'Active', ?, NULL FROM "
                "(SELECT unnest(?::VARCHAR[]) AS k, unnest(?::VARCHAR[]) AS e) ON CONFLICT DO NOTHING",
                [sent_at, keys, emails],
            )
            con.execute(
                "UPDATE subscribers SET status = 'Unsubscribed', unsubscribed_at = t.event_date FROM tracking_events t "
                "WHERE t.send_id = ? AND t.event_type = 'Unsubscribe' AND t.subscriber_key = subscribers.subscriber_key",
                [send_id],
            )
            con.execute(
                "UPDATE subscribers SET status = 'Bounced' FROM tracking_events t WHERE t.send_id = ? "
                "AND t.event_type = 'Bounce' AND t.bounce_category = 'Hard bounce' "
                "AND t.subscriber_key = subscribers.subscriber_key AND subscribers.status = 'Active'",
                [send_id],
            )
        return send_id, len(keys)


def simulate(
    send_id: int, keys: list[str], emails: list[str | None], sent_at: datetime, seed: int, b: Behaviour
) -> pd.DataFrame:
    """The events of one send, deterministic for (seed, send id, audience)."""
    rng = np.random.default_rng([seed, send_id])
    n = len(keys)
    columns = [
        "event_type",
        "send_id",
        "subscriber_key",
        "email",
        "event_date",
        "visible_at",
        "url",
        "bounce_category",
        "smtp_code",
        "smtp_reason",
        "batch_id",
        "is_unique",
    ]
    if n == 0:
        return pd.DataFrame(columns=columns)
    rows: list[tuple] = []
    sent_offsets = rng.integers(0, 600, n)  # the send takes up to ten minutes
    bounced = rng.random(n) < b.bounce
    hard = rng.random(n) < b.hard_share
    opened = (~bounced) & (rng.random(n) < b.open)
    open_delay = rng.exponential(6 * 3600, n)  # most opens within hours, a tail over days
    clicks = opened & (rng.random(n) < b.click_given_open)
    unsub = opened & (rng.random(n) < b.unsubscribe_given_open)
    late = rng.random((n, 4)) < b.late_share
    lag = rng.integers(0, 3600, (n, 4))

    def visible(at: datetime, i: int, j: int) -> datetime:
        return at + timedelta(seconds=int(lag[i, j]) if late[i, j] else int(lag[i, j]) % 300)

    for i, key in enumerate(keys):
        sent = sent_at + timedelta(seconds=int(sent_offsets[i]))
        rows.append(("Sent", send_id, key, emails[i], sent, sent, None, None, None, None, 1, True))
        if bounced[i]:
            category, code, reason = BOUNCES[0] if hard[i] else BOUNCES[1 + int(rng.integers(0, 2))]
            at = sent + timedelta(seconds=int(rng.integers(5, 600)))
            rows.append(
                (
                    "Bounce",
                    send_id,
                    key,
                    emails[i],
                    at,
                    visible(at, i, 0),
                    None,
                    category,
                    code,
                    reason,
                    1,
                    True,
                )
            )
            continue
        if opened[i]:
            at = sent + timedelta(seconds=int(open_delay[i]) + 30)
            rows.append(
                ("Open", send_id, key, emails[i], at, visible(at, i, 1), None, None, None, None, 1, True)
            )
            if clicks[i]:
                click_at = at + timedelta(seconds=int(rng.integers(5, 900)))
                url = URLS[int(rng.integers(0, len(URLS)))]
                rows.append(
                    (
                        "Click",
                        send_id,
                        key,
                        emails[i],
                        click_at,
                        visible(click_at, i, 2),
                        url,
                        None,
                        None,
                        None,
                        1,
                        True,
                    )
                )
            if unsub[i]:
                out_at = at + timedelta(seconds=int(rng.integers(30, 1800)))
                rows.append(
                    (
                        "Unsubscribe",
                        send_id,
                        key,
                        emails[i],
                        out_at,
                        visible(out_at, i, 3),
                        None,
                        None,
                        None,
                        None,
                        1,
                        True,
                    )
                )
    return pd.DataFrame(rows, columns=columns)


# The system data views with the columns MCE documents (shared/mce/FACTS.md, section 7). What the
# local MCE has no notion of is null: other business units (OYBAccountID), lists, subscriber ids,
# triggered sends, bounce subcategories.
_IDENTITY = (
    "0 AS AccountID, NULL::BIGINT AS OYBAccountID, send_id AS JobID, 0 AS ListID, batch_id AS BatchID, "
    "0 AS SubscriberID, subscriber_key AS SubscriberKey, event_date AS EventDate, "
    "split_part(email, '@', 2) AS Domain, NULL::VARCHAR AS TriggererSendDefinitionObjectID, "
    "NULL::VARCHAR AS TriggeredSendCustomerKey"
)


def _events(event_type: str, extra: str = "") -> str:
    return (
        f"SELECT {_IDENTITY}{', ' + extra if extra else ''} FROM tracking_events "
        f"WHERE event_type = '{event_type}' AND visible_at <= $now"
    )


DATA_VIEWS = {
    "_Sent": _events("Sent"),
    "_Open": _events("Open", "is_unique AS IsUnique"),
    "_Click": _events("Click", "url AS URL, url AS LinkName, url AS LinkContent, is_unique AS IsUnique"),
    "_Bounce": _events(
        "Bounce",
        "is_unique AS IsUnique, NULL::INTEGER AS BounceCategoryID, bounce_category AS BounceCategory, "
        "NULL::INTEGER AS BounceSubcategoryID, NULL::VARCHAR AS BounceSubcategory, NULL::INTEGER AS BounceTypeID, "
        "NULL::VARCHAR AS BounceType, smtp_reason AS SMTPBounceReason, smtp_code AS SMTPCode",
    ),
    "_Unsubscribe": _events("Unsubscribe", "is_unique AS IsUnique"),
    "_Subscribers": "SELECT 0 AS SubscriberID, s.subscriber_key AS SubscriberKey, s.email AS EmailAddress, "
    "split_part(s.email, '@', 2) AS Domain, 'ExactTarget' AS SubscriberType, s.status AS Status, "
    "s.created_at AS DateJoined, s.unsubscribed_at AS DateUnsubscribed, b.undeliverable AS DateUndeliverable, "
    "coalesce(b.bounces, 0) AS BounceCount FROM subscribers s LEFT JOIN (SELECT subscriber_key, count(*) AS "
    "bounces, max(event_date) FILTER (WHERE bounce_category = 'Hard bounce') AS undeliverable "
    "FROM tracking_events WHERE event_type = 'Bounce' AND visible_at <= $now GROUP BY subscriber_key) b "
    "USING (subscriber_key)",
    # One row per send (job). A simulated send's email name is its send definition's key, or the
    # name it was sent under; there are no sender profiles, so the sender's columns are null.
    "_Job": "SELECT send_id AS JobID, NULL::BIGINT AS EmailID, 0 AS AccountID, NULL::VARCHAR AS FromName, "
    "NULL::VARCHAR AS FromEmail, sent_at AS SchedTime, sent_at AS PickupTime, sent_at AS DeliveredTime, "
    "sent_at AS CreatedDate, sent_at AS ModifiedDate, 'Complete' AS JobStatus, definition_key AS EmailName, "
    "subject AS EmailSubject, CASE WHEN EXISTS (SELECT 1 FROM objects o WHERE o.object_type = "
    "'EmailSendDefinition' AND o.customer_key = sends.definition_key) THEN definition_key END "
    "AS EmailSendDefinition, NULL::VARCHAR AS TriggererSendDefinitionObjectID, "
    "NULL::VARCHAR AS TriggeredSendCustomerKey FROM sends WHERE sent_at <= $now",
}
