"""Email tracking data: events retrieved through the API (paged) or read from a tracking extract.

Both give frames with the columns of the TrackingEvent contract; event dates are MCE
server time (Central Standard Time, no daylight saving).
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from nto_etl.mce import rules
from nto_etl.mce.client import MceClient

MCE_TIMEZONE = timezone(timedelta(hours=-6), "CST")
COLUMNS = [
    "send_id",
    "subscriber_key",
    "event_type",
    "event_date",
    "url",
    "bounce_category",
    "smtp_code",
    "batch_id",
]
BASE = ["SendID", "SubscriberKey", "EventDate", "EventType", "BatchID"]
EVENT_OBJECTS = {
    "SentEvent": BASE,
    "OpenEvent": BASE,
    "ClickEvent": [*BASE, "URL"],
    "BounceEvent": [*BASE, "BounceCategory", "SMTPCode"],
    "UnsubEvent": BASE,
}
SEND_JOBS_FILE = "SendJobs.csv"  # in a tracking extract with ExtractSendJobs: one row per send
RENAMES = {
    "SendID": "send_id",
    "SubscriberKey": "subscriber_key",
    "EventDate": "event_date",
    "EventType": "event_type",
    "URL": "url",
    "BounceCategory": "bounce_category",
    "SMTPCode": "smtp_code",
    "BatchID": "batch_id",
}


def to_utc(mce_time: datetime) -> datetime:
    """An MCE server timestamp (naive CST) as naive UTC."""
    return mce_time.replace(tzinfo=MCE_TIMEZONE).astimezone(UTC).replace(tzinfo=None)


def mce_day_bounds(day: str, overlap_days: int = 1) -> tuple[datetime, datetime]:
    """[start, end) of a day in MCE time, starting `overlap_days` earlier to catch late events."""
    start = datetime.fromisoformat(day) - timedelta(days=overlap_days)
    return start, datetime.fromisoformat(day) + timedelta(days=1)


def _frame(records: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records).rename(columns=RENAMES)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame[COLUMNS]


def retrieve_events(
    client: MceClient, object_type: str, start: datetime, end: datetime, *, batch_size: int | None = None
) -> Iterator[pd.DataFrame]:
    """Events of one type with EventDate between start and end (MCE time), a frame per page."""
    properties = EVENT_OBJECTS[object_type]
    flt = client.simple_filter("EventDate", "between", start, end)
    for page in client.retrieve(object_type, properties, flt, batch_size=batch_size):
        yield _frame([{p: getattr(e, p, None) for p in properties} for e in page])


def is_send_jobs_file(name: str) -> bool:
    """Whether a tracking extract's file (by its name in the zip) is its send jobs, not events."""
    return posixpath.basename(name).lower() == SEND_JOBS_FILE.lower()


def read_tracking_extract(path: Path) -> pd.DataFrame:
    """All events in a tracking extract zip (Sent.csv, Opens.csv, ...), as one frame; its
    SendJobs.csv describes sends, not events."""
    frames = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if is_send_jobs_file(name):
                continue
            with archive.open(name) as handle:
                frame = pd.read_csv(
                    io.TextIOWrapper(handle, encoding="utf-8"), dtype=str, keep_default_na=False
                )
            frame = frame.replace("", None)
            frame["EventDate"] = pd.to_datetime(
                frame["EventDate"], format=rules.RENDER_DATE_FORMAT.replace("-", "")
            )
            frames.append(_frame(frame.to_dict("records")))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)
