"""Contracts of the CRM exports: contacts, newsletter subscriptions, event registrations, new customers."""

from __future__ import annotations

import pandas as pd
from pandera.typing import Series

from nto_etl.contracts.fields import MceContract, Timestamp, mce_field


class Contact(MceContract):
    """A CRM contact: who may receive the newsletter and where they live."""

    customer_id: Series[str] = mce_field(
        "CRM customer id", max_length=18, required=True, str_matches=r"^[A-Za-z0-9]+$"
    )
    subscriber_key: Series[str] = mce_field(
        "MCE subscriber key (stable per contact)", max_length=36, primary_key=True
    )
    email: Series[str] = mce_field("Email address", "EmailAddress", required=True)
    first_name: Series[str] = mce_field("Given name", max_length=50)
    last_name: Series[str] = mce_field("Family name", max_length=80)
    phone: Series[str] = mce_field("Phone number, with leading zeros kept", "Phone")
    street: Series[str] = mce_field("Street address", max_length=200)
    city: Series[str] = mce_field("City", max_length=80)
    state: Series[str] = mce_field("State or province code", max_length=3)
    postal_code: Series[str] = mce_field("Postal code, text so leading zeros survive", max_length=10)
    country: Series[str] = mce_field("ISO 3166 alpha-2 country code", max_length=2, str_matches=r"^[A-Z]{2}$")
    locale: Series[str] = mce_field("Preferred locale, e.g. en-US", "Locale")
    created_at: Series[Timestamp] = mce_field(
        "When the contact was created in the CRM", "Date", required=True
    )
    modified_at: Series[Timestamp] = mce_field(
        "When the contact last changed in the CRM", "Date", required=True
    )

    class Config:
        metadata = {
            "dataset": "contacts",
            "modified_column": "modified_at",
            "sendable_field": "subscriber_key",
        }


class NewsletterSubscription(MceContract):
    """Opt-in state for the monthly newsletter."""

    subscriber_key: Series[str] = mce_field("MCE subscriber key", max_length=36, primary_key=True)
    email: Series[str] = mce_field("Email address", "EmailAddress", required=True)
    opted_in: Series[pd.BooleanDtype] = mce_field(
        "Whether the contact wants the newsletter", "Boolean", required=True
    )
    opt_in_date: Series[Timestamp] = mce_field("When the contact last opted in or out", "Date")
    source: Series[str] = mce_field(
        "Where the choice was made (web, store, call center)",
        max_length=20,
        isin=["web", "store", "call_center", "event"],
    )
    modified_at: Series[Timestamp] = mce_field("When this row last changed in the CRM", "Date", required=True)

    class Config:
        metadata = {
            "dataset": "newsletter_subscriptions",
            "modified_column": "modified_at",
            "sendable_field": "subscriber_key",
        }


class EventRegistration(MceContract):
    """A sign-up for an in-store or outdoor event, for transactional reminders."""

    registration_id: Series[str] = mce_field("CRM registration id", max_length=18, primary_key=True)
    event_id: Series[str] = mce_field("CRM event id", max_length=18, required=True)
    event_name: Series[str] = mce_field("Event title shown in the reminder", max_length=120, required=True)
    event_date: Series[Timestamp] = mce_field("When the event starts (local time)", "Date", required=True)
    event_location: Series[str] = mce_field("Store or venue", max_length=120)
    subscriber_key: Series[str] = mce_field("Registrant's subscriber key", max_length=36, required=True)
    email: Series[str] = mce_field("Registrant's email", "EmailAddress", required=True)
    seats: Series[pd.Int64Dtype] = mce_field("Seats booked", "Number", ge=1, le=20)
    registered_at: Series[Timestamp] = mce_field("When the registration was made", "Date", required=True)
    modified_at: Series[Timestamp] = mce_field("When this row last changed in the CRM", "Date", required=True)

    class Config:
        metadata = {
            "dataset": "event_registrations",
            "modified_column": "modified_at",
            "sendable_field": "subscriber_key",
        }


class NewCustomer(MceContract):
    """A customer created that day: the audience of the welcome email."""

    subscriber_key: Series[str] = mce_field("MCE subscriber key", max_length=36, primary_key=True)
    email: Series[str] = mce_field("Email address", "EmailAddress", required=True)
    first_name: Series[str] = mce_field("Given name for the greeting", max_length=50)
    locale: Series[str] = mce_field("Locale of the welcome email", "Locale")
    home_store: Series[str] = mce_field("Nearest store", max_length=60)
    first_order_total: Series[pd.Float64Dtype] = mce_field(
        "Value of the first order", "Decimal", precision=10, scale=2, ge=0
    )
    created_at: Series[Timestamp] = mce_field("When the customer was created", "Date", required=True)
    modified_at: Series[Timestamp] = mce_field("When this row last changed in the CRM", "Date", required=True)

    class Config:
        metadata = {
            "dataset": "new_customers",
            "modified_column": "modified_at",
            "sendable_field": "subscriber_key",
        }
