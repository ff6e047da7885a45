"""Data contracts: one pandera model per dataset, the single source of truth for its types."""

from __future__ import annotations

import pandera.pandas as pa

from nto_etl.contracts.crm import Contact, EventRegistration, NewCustomer, NewsletterSubscription
from nto_etl.contracts.fields import dataset_info, de_fields, duckdb_columns, mce_field
from nto_etl.contracts.tracking import SendJob, TrackingEvent
from nto_etl.contracts.web_analytics import PageView

MODELS: dict[str, type[pa.DataFrameModel]] = {
    dataset_info(m).name: m
    for m in (Contact, NewsletterSubscription, EventRegistration, NewCustomer, TrackingEvent, PageView)
}

__all__ = [
    "MODELS",
    "Contact",
    "EventRegistration",
    "NewCustomer",
    "NewsletterSubscription",
    "PageView",
    "SendJob",
    "TrackingEvent",
    "dataset_info",
    "de_fields",
    "duckdb_columns",
    "mce_field",
]
