"""The marketing segments, built by the real client in a local MCE of their own (their data
extensions have fixed keys, so they must not share the session's)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pytest

from nto_etl import segments
from nto_etl.connections import local_settings
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import tracking as trk
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceConfigurationError
from nto_etl.mce_local import LocalMce
from nto_etl.mce_local.clock import mce_now
from nto_etl.schema_sync import ensure_data_extension
from nto_etl_tests.helpers import all_rows

AUDIENCE = [f"NL{i:05d}" for i in range(400)]
NEW_CUSTOMERS = AUDIENCE[::4]  # a quarter of the audience also got the welcome email
LATE_JOINERS = [f"NL9{i:04d}" for i in range(20)]  # opted in after both sends: sent nothing yet


@pytest.fixture(scope="module")
def mce() -> Iterator[tuple[LocalMce, MceClient]]:
    with LocalMce() as local:
        yield local, MceClient(local_settings(local.info)[0], backoff_seconds=0.01)


def rows(keys: list[str]) -> list[dict[str, object]]:
    return [{"subscriber_key": k, "email": f"{k.lower()}@example.com"} for k in keys]


@pytest.fixture(scope="module")
def sends(mce: tuple[LocalMce, MceClient]) -> pd.DataFrame:
    """Last month's newsletter, sent 31 days ago (the 1st of a 31-day month, seen from the next
    1st), and a welcome email two days ago; returns every open since."""
    local, client = mce
    ensure_data_extension(client, segments.NEWSLETTER_AUDIENCE.spec())
    dex.upsert_rows(client, segments.NEWSLETTER_AUDIENCE.de_key, rows(AUDIENCE))
    welcome = dex.DataExtensionSpec(
        "NTO_Welcome_Test", "Welcome test", segments.AUDIENCE_FIELDS, sendable_field="subscriber_key"
    )
    ensure_data_extension(client, welcome)
    dex.upsert_rows(client, welcome.customer_key, rows(NEW_CUSTOMERS))
    now = mce_now()
    local.send(
        segments.NEWSLETTER_AUDIENCE.de_key, sent_at=now - timedelta(days=31), seed=5, name="newsletter"
    )
    local.send(welcome.customer_key, sent_at=now - timedelta(days=2), seed=6, name="welcome")
    dex.upsert_rows(client, segments.NEWSLETTER_AUDIENCE.de_key, rows(LATE_JOINERS))
    opens = pd.concat(trk.retrieve_events(client, "OpenEvent", now - timedelta(days=40), mce_now()))
    return opens.assign(event_date=pd.to_datetime(opens.event_date), sent_at=now)


def not_opened(client: MceClient) -> list[str]:
    return sorted(all_rows(client, segments.NOT_OPENED.de_key, ["subscriber_key"]))


def test_readers_of_last_months_newsletter_are_not_non_openers(
    mce: tuple[LocalMce, MceClient], sends: pd.DataFrame
) -> None:
    """Refreshed on the 1st, the segment's window holds the whole newsletter before, even after a
    31-day month; an open of any email of ours, the welcome email too, counts; a member we have
    sent nothing is not a non-opener."""
    _, client = mce
    openers = set(sends.subscriber_key)
    late_in_window = sends.event_date < sends.sent_at - timedelta(days=30)
    newsletter_readers = set(
        sends.loc[sends.event_date < sends.sent_at - timedelta(days=20), "subscriber_key"]
    )
    welcome_only = openers - newsletter_readers
    assert late_in_window.sum() > 50  # most opens come within hours of the send: over 30 days ago
    assert welcome_only and welcome_only <= set(NEW_CUSTOMERS)

    segments.refresh_not_opened(client)

    assert not_opened(client) == sorted(set(AUDIENCE) - openers)


def test_a_thirty_day_window_would_miss_last_months_newsletter(
    mce: tuple[LocalMce, MceClient], sends: pd.DataFrame
) -> None:
    """Why the default window is longer than a month: last month's newsletter falls out of it,
    and only the welcome email's recipients are left to judge."""
    _, client = mce
    recent = set(sends.loc[sends.event_date >= sends.sent_at - timedelta(days=30), "subscriber_key"])
    newsletter_only_non_openers = set(AUDIENCE) - set(NEW_CUSTOMERS) - set(sends.subscriber_key)
    assert newsletter_only_non_openers

    segments.refresh_not_opened(client, days=30)

    assert not_opened(client) == sorted(set(NEW_CUSTOMERS) - recent)
    assert not newsletter_only_non_openers & set(not_opened(client))  # last month's non-openers go unseen


def test_the_window_setting_is_checked() -> None:
    assert segments.not_opened_days({}) == segments.NOT_OPENED_DAYS
    assert segments.not_opened_days({"NTO_NOT_OPENED_DAYS": " 45 "}) == 45
    for bad in ("0", "-3", "five", "7.5"):
        with pytest.raises(MceConfigurationError, match="NTO_NOT_OPENED_DAYS"):
            segments.not_opened_days({"NTO_NOT_OPENED_DAYS": bad})
