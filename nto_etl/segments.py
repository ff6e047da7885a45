"""Marketing segments in MCE: query activities (geography) and data filters (behaviour).

Each segment writes a data extension whose fields are a subset of a contract's, so its
types come from the same source of truth as everything else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from nto_etl.contracts import Contact, NewsletterSubscription, de_fields
from nto_etl.mce import activities as act
from nto_etl.mce import data_extensions as dex
from nto_etl.mce.client import MceClient
from nto_etl.mce.fields import DEField
from nto_etl.mce.settings import env_number
from nto_etl.schema_sync import ensure_data_extension


def _pick(model: type, *names: str, key: str = "subscriber_key") -> tuple[DEField, ...]:
    fields = {f.name: f for f in de_fields(model)}
    return tuple(replace(fields[n], is_primary_key=n == key, is_required=n == key) for n in names)


AUDIENCE_FIELDS = _pick(NewsletterSubscription, "subscriber_key", "email")
REGION_FIELDS = _pick(Contact, "subscriber_key", "email", "first_name", "city", "state")
ENGAGEMENT_FIELDS = (*AUDIENCE_FIELDS, DEField("opened", "Boolean", description="Opened the send"))


@dataclass(frozen=True)
class Segment:
    de_key: str
    de_name: str
    fields: tuple[DEField, ...]
    sendable: bool = False

    def spec(self) -> dex.DataExtensionSpec:
        return dex.DataExtensionSpec(
            self.de_key, self.de_name, self.fields, sendable_field="subscriber_key" if self.sendable else None
        )


NEWSLETTER_AUDIENCE = Segment(
    "NTO_Newsletter_Audience", "Newsletter audience (opted in)", AUDIENCE_FIELDS, sendable=True
)
NEWSLETTER_ENGAGEMENT = Segment(
    "NTO_Newsletter_Engagement", "Newsletter audience emailed lately, opened or not", ENGAGEMENT_FIELDS
)
NOT_OPENED = Segment(
    "NTO_Segment_Not_Opened",
    "Newsletter audience emailed lately, opened none",
    ENGAGEMENT_FIELDS,
    sendable=True,
)
NOT_OPENED_DAYS_VARIABLE = "NTO_NOT_OPENED_DAYS"
# More than a month: the segment is refreshed on the 1st with the newsletter's audience, and the
# newsletter before, sent on the 1st of the month before (up to 31 days earlier; its opens come
# mostly within hours), must be inside the window whole, or its readers would count as non-openers.
NOT_OPENED_DAYS = 35


def not_opened_days(env: Mapping[str, str] = os.environ) -> int:
    """The not-opened segment's window in days (`NTO_NOT_OPENED_DAYS`), or an error naming it."""
    return env_number(env, NOT_OPENED_DAYS_VARIABLE, str(NOT_OPENED_DAYS), int)


def region_segment(state: str) -> Segment:
    return Segment(f"NTO_Segment_Region_{state}", f"Customers in {state}", REGION_FIELDS, sendable=True)


def refresh_newsletter_audience(
    client: MceClient, subscriptions_de: str, subscriptions_name: str
) -> act.ActivityResult:
    """Opted-in subscribers, by query activity (Overwrite)."""
    ensure_data_extension(client, NEWSLETTER_AUDIENCE.spec())
    return act.run_query(
        client,
        act.QuerySpec(
            "NTO_Q_Newsletter_Audience",
            f"SELECT subscriber_key, email FROM [{subscriptions_name}] WHERE opted_in = 1",
            NEWSLETTER_AUDIENCE.de_key,
            NEWSLETTER_AUDIENCE.de_name,
            "Overwrite",
        ),
    )


def refresh_region(client: MceClient, state: str, contacts_name: str) -> act.ActivityResult:
    """Customers in one state, by query activity (Overwrite). `state` comes from configuration."""
    if not (state.isalpha() and len(state) <= 3):
        raise ValueError(f"state {state!r} must be a 2-3 letter code")
    segment = region_segment(state.upper())
    ensure_data_extension(client, segment.spec())
    return act.run_query(
        client,
        act.QuerySpec(
            f"NTO_Q_Region_{state.upper()}",
            f"SELECT subscriber_key, email, first_name, city, state FROM [{contacts_name}] WHERE state = '{state.upper()}'",
            segment.de_key,
            segment.de_name,
            "Overwrite",
        ),
    )


def refresh_not_opened(client: MceClient, days: int = NOT_OPENED_DAYS) -> act.ActivityResult:
    """Audience members we emailed in the last `days` days (MCE server time) who opened none of
    it: a query flags the audience members sent something in the window as opened or not
    (system data views _Sent and _Open), then a data filter keeps the non-openers. Any email
    counts, the welcome email and event reminders too: a subscriber who opened one of those is
    not disengaged, and one sent nothing yet (a new opt-in) has not been given the chance."""
    if days < 1:
        raise ValueError(f"the not-opened window must be at least one day, got {days}")
    ensure_data_extension(client, NEWSLETTER_ENGAGEMENT.spec())
    ensure_data_extension(client, NOT_OPENED.spec())
    since = f"DATEADD(day, -{int(days)}, GETDATE())"
    act.run_query(
        client,
        act.QuerySpec(
            "NTO_Q_Newsletter_Engagement",
            "SELECT a.subscriber_key, a.email, CASE WHEN EXISTS (SELECT 1 FROM _Open o WHERE o.SubscriberKey = "
            f"a.subscriber_key AND o.EventDate >= {since}) THEN 1 ELSE 0 END AS opened "
            f"FROM [{NEWSLETTER_AUDIENCE.de_name}] a WHERE EXISTS (SELECT 1 FROM _Sent s "
            f"WHERE s.SubscriberKey = a.subscriber_key AND s.EventDate >= {since})",
            NEWSLETTER_ENGAGEMENT.de_key,
            NEWSLETTER_ENGAGEMENT.de_name,
            "Overwrite",
        ),
    )
    return act.run_filter(
        client,
        act.FilterSpec(
            "NTO_F_Not_Opened",
            NEWSLETTER_ENGAGEMENT.de_key,
            NOT_OPENED.de_key,
            client.simple_filter("opened", "equals", "false"),
            "Emailed lately, opened none of it",
        ),
    )


def segment_size(client: MceClient, de_key: str) -> int:
    return sum(len(page) for page in dex.retrieve_rows(client, de_key, ["subscriber_key"]))
