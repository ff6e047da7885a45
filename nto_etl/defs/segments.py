"""Segment data extensions: built in MCE by query activities (geography) and data filters (behaviour)."""

import os
from collections.abc import Mapping

import dagster as dg

from nto_etl import segments
from nto_etl.config import default_config
from nto_etl.defs.crm_sync import de_key
from nto_etl.defs.partitions import mce_failures, network_retry
from nto_etl.defs.resources import MceResource


def region_setting(env: Mapping[str, str]) -> str:
    """The state of the region segment, as the segment's key and query spell it (upper case)."""
    return env.get("NTO_SEGMENT_REGION", "OR").strip().upper()


REGION = region_setting(os.environ)
AUDIENCE = dg.AssetKey(["mce", "segment_newsletter_audience"])


def _result(client: object, de: str, message: str, **extra: int) -> dg.MaterializeResult:
    size = segments.segment_size(client, de)  # type: ignore[arg-type]
    return dg.MaterializeResult(
        metadata={"dagster/row_count": size, "data_extension": de, "activity": message, **extra}
    )


@dg.asset(
    key=AUDIENCE,
    deps=[de_key("newsletter_subscriptions")],
    group_name="segments",
    kinds={"salesforce", "sql"},
    pool="mce",
    retry_policy=network_retry,
    description="Opted-in newsletter subscribers (query activity), the monthly newsletter's sendable audience.",
)
def segment_newsletter_audience(mce: MceResource) -> dg.MaterializeResult:
    export = default_config().export("newsletter_subscriptions")
    with mce_failures():
        client = mce.client()
        result = segments.refresh_newsletter_audience(client, export.de_key, export.de_name)
        return _result(client, segments.NEWSLETTER_AUDIENCE.de_key, result.message)


@dg.asset(
    key=["mce", "segment_region"],
    deps=[de_key("contacts")],
    group_name="segments",
    kinds={"salesforce", "sql"},
    pool="mce",
    retry_policy=network_retry,
    description=f"Customers in {REGION} (query activity over NTO Contacts); NTO_SEGMENT_REGION sets the state.",
)
def segment_region(mce: MceResource) -> dg.MaterializeResult:
    with mce_failures():
        client = mce.client()
        result = segments.refresh_region(client, REGION, default_config().export("contacts").de_name)
        return _result(client, segments.region_segment(REGION).de_key, result.message)


@dg.asset(
    key=["mce", "segment_not_opened"],
    deps=[AUDIENCE, dg.AssetKey(["mce", "tracking_extract"])],
    group_name="segments",
    kinds={"salesforce", "sql"},
    pool="mce",
    retry_policy=network_retry,
    description="Newsletter audience members we emailed in the last NTO_NOT_OPENED_DAYS days "
    f"(default {segments.NOT_OPENED_DAYS}) who opened none of it: _Sent and _Open data views flag them (query), "
    "then a data filter keeps the non-openers.",
)
def segment_not_opened(mce: MceResource) -> dg.MaterializeResult:
    days = segments.not_opened_days()
    with mce_failures():
        client = mce.client()
        result = segments.refresh_not_opened(client, days)
        return _result(client, segments.NOT_OPENED.de_key, result.message, window_days=days)
