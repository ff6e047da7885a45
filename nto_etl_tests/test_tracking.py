"""Simulated sends and tracking retrieval: pages, date windows, late events, subscriber status."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from nto_etl.mce import activities as act
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import tracking as trk
from nto_etl.mce.client import MceClient
from nto_etl.mce_local import LocalMce
from nto_etl.mce_local.clock import advance, mce_now
from nto_etl.mce_local.tracking import Behaviour, simulate

FIELDS = (dex.DEField("SubscriberKey", "Text", 20, is_primary_key=True), dex.DEField("Email", "EmailAddress"))


@pytest.fixture
def audience(client: MceClient, key: str) -> str:
    dex.create_data_extension(client, dex.DataExtensionSpec(key, key, FIELDS, sendable_field="SubscriberKey"))
    dex.upsert_rows(
        client, key, [{"SubscriberKey": f"T{i:04d}", "Email": f"t{i}@example.com"} for i in range(600)]
    )
    return key


def test_same_seed_same_events() -> None:
    keys, emails = [f"K{i}" for i in range(500)], [f"k{i}@example.com" for i in range(500)]
    at = datetime(2026, 11, 1, 10)
    first = simulate(1, keys, emails, at, 3, Behaviour())
    pd.testing.assert_frame_equal(first, simulate(1, keys, emails, at, 3, Behaviour()))
    assert not first.equals(simulate(1, keys, emails, at, 4, Behaviour()))
    rates = first.event_type.value_counts() / 500
    assert 0.25 < rates["Open"] < 0.45
    assert rates["Sent"] == 1.0
    assert 0.05 < rates["Click"] / rates["Open"] < 0.6


def test_retrieval_pages_and_filters_by_date(client: MceClient, local_mce: LocalMce, audience: str) -> None:
    early = mce_now() - timedelta(days=10)
    later = mce_now() - timedelta(days=3)
    first_send, _ = local_mce.send(audience, sent_at=early, seed=1)
    second_send, _ = local_mce.send(audience, sent_at=later, seed=2)
    pages = list(
        trk.retrieve_events(
            client, "SentEvent", later - timedelta(hours=1), later + timedelta(hours=1), batch_size=250
        )
    )
    assert [len(p) for p in pages] == [250, 250, 100]
    window = pd.concat(pages)
    assert set(window.send_id.astype(int)) == {second_send}
    both = pd.concat(trk.retrieve_events(client, "SentEvent", early - timedelta(hours=1), mce_now()))
    assert {first_send, second_send} <= set(both.send_id.astype(int))


def test_late_events_are_picked_up_by_a_later_overlapping_window(
    client: MceClient, local_mce: LocalMce, audience: str
) -> None:
    sent_at = mce_now() - timedelta(minutes=90)
    send_id, _ = local_mce.send(audience, sent_at=sent_at, seed=5)
    window = (sent_at - timedelta(hours=1), mce_now())

    def opens_and_clicks() -> set[tuple]:
        frames = [p for ot in ("OpenEvent", "ClickEvent") for p in trk.retrieve_events(client, ot, *window)]
        events = pd.concat(frames)
        events = events[events.send_id.astype(int) == send_id]
        return set(events[["subscriber_key", "event_type", "event_date"]].itertuples(index=False, name=None))

    now_visible = opens_and_clicks()
    with advance(timedelta(hours=2)):
        after = opens_and_clicks()  # the same window, read again later
    late = after - now_visible
    assert now_visible <= after
    assert late, "some events in the window arrive late"
    assert all(event_date <= window[1] for _, _, event_date in late)


def test_unsubscribes_and_hard_bounces_change_subscriber_status(
    client: MceClient, local_mce: LocalMce, audience: str
) -> None:
    local_mce.send(audience, sent_at=mce_now() - timedelta(days=4), seed=9)
    events = pd.concat(
        [
            p
            for ot in ("UnsubEvent", "BounceEvent")
            for p in trk.retrieve_events(client, ot, mce_now() - timedelta(days=5), mce_now())
        ]
    )
    subscribers = {
        s.SubscriberKey: s.Status for s in client.retrieve_all("Subscriber", ["SubscriberKey", "Status"])
    }
    unsubscribed = set(events.loc[events.event_type == "Unsubscribe", "subscriber_key"])
    hard = set(events.loc[events.event_type == "HardBounce", "subscriber_key"])
    assert hard
    assert all(subscribers[k] == "Unsubscribed" for k in unsubscribed)
    assert all(subscribers[k] in ("Bounced", "Unsubscribed") for k in hard)
    assert list(subscribers.values()).count("Active") > 500


def test_send_through_soap_produces_sent_events(client: MceClient, audience: str) -> None:
    result = act.start_send(client, f"{audience}_send", audience, "Welcome")
    assert result.message == "600 recipients"
    sent = pd.concat(
        trk.retrieve_events(
            client, "SentEvent", mce_now() - timedelta(hours=1), mce_now() + timedelta(hours=1)
        )
    )
    assert (sent.send_id.astype(int) == int(result.task_id or 0)).sum() <= 600
