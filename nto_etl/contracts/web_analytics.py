"""Contract of the third-party web-analytics feed (page views)."""

from __future__ import annotations

from pandera.typing import Series

from nto_etl.contracts.fields import MceContract, Timestamp, mce_field


class PageView(MceContract):
    """One page view, keyed to a customer by id or by SHA-256 of the lower-cased email."""

    page_view_id: Series[str] = mce_field("The feed's page-view id", max_length=36, primary_key=True)
    session_id: Series[str] = mce_field("The feed's session id", max_length=36, required=True)
    customer_id: Series[str] = mce_field("CRM customer id when the visitor was logged in", max_length=18)
    email_sha256: Series[str] = mce_field(
        "SHA-256 of the lower-cased email, when known", max_length=64, str_matches=r"^[0-9a-f]{64}$"
    )
    viewed_at: Series[Timestamp] = mce_field("When the page was viewed (UTC)", "Date", required=True)
    page_url: Series[str] = mce_field("Page URL", max_length=900, required=True)
    page_title: Series[str] = mce_field("Page title", max_length=200)
    referrer: Series[str] = mce_field("Referrer URL", max_length=900)
    utm_source: Series[str] = mce_field("utm_source campaign parameter", max_length=100)
    utm_medium: Series[str] = mce_field("utm_medium campaign parameter", max_length=100)
    utm_campaign: Series[str] = mce_field("utm_campaign campaign parameter", max_length=100)

    class Config:
        metadata = {"dataset": "web_page_views"}
