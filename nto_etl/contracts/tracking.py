"""Contract of email tracking events as MCE reports them (sent, open, click, bounce, unsubscribe)."""

from __future__ import annotations

import pandas as pd
from pandera.typing import Series

from nto_etl.contracts.fields import MceContract, Timestamp, mce_field

EVENT_TYPES = ["Sent", "Open", "Click", "HardBounce", "SoftBounce", "OtherBounce", "Unsubscribe"]


class TrackingEvent(MceContract):
    """One tracking event; natural key (send_id, subscriber_key, event_type, event_date, url)."""

    send_id: Series[pd.Int64Dtype] = mce_field("MCE SendID (JobID)", "Number", required=True, ge=0)
    subscriber_key: Series[str] = mce_field("MCE subscriber key", max_length=254, required=True)
    event_type: Series[str] = mce_field(
        "Sent, Open, Click, HardBounce, SoftBounce, OtherBounce or Unsubscribe",
        max_length=20,
        required=True,
        isin=EVENT_TYPES,
    )
    event_date: Series[Timestamp] = mce_field(
        "When it happened, MCE server time (CST, no DST)", "Date", required=True
    )
    url: Series[str] = mce_field("Clicked URL (clicks only)", max_length=900)
    bounce_category: Series[str] = mce_field("Bounce category (bounces only)", max_length=50)
    smtp_code: Series[str] = mce_field("SMTP code (bounces only)", max_length=10)
    batch_id: Series[pd.Int64Dtype] = mce_field("MCE BatchID", "Number", ge=0)

    class Config:
        metadata = {"dataset": "tracking_events"}


class SendJob(MceContract):
    """One send (MCE job) as the tracking extract's SendJobs.csv describes it; key send_id."""

    send_id: Series[pd.Int64Dtype] = mce_field("MCE SendID (JobID)", "Number", required=True, ge=0)
    email_name: Series[str] = mce_field("The email's name in MCE", max_length=255)
    subject: Series[str] = mce_field("Subject line", max_length=1000)
    send_definition_key: Series[str] = mce_field(
        "External key of the send definition, if any", max_length=100
    )
    triggered_send_key: Series[str] = mce_field(
        "External key of the triggered send definition (triggered sends only)", max_length=100
    )
    sched_time: Series[Timestamp] = mce_field("When it was scheduled, MCE server time (CST, no DST)", "Date")
    sent_time: Series[Timestamp] = mce_field("When it was sent, MCE server time (CST, no DST)", "Date")
    job_status: Series[str] = mce_field("MCE's status of the send job (Complete, ...)", max_length=30)

    class Config:
        metadata = {"dataset": "send_jobs"}
