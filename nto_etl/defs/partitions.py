"""Daily partitions: one per day of CRM exports; today's exists, since exports arrive during the day."""

import os

import dagster as dg

START_DATE = os.environ.get("NTO_START_DATE", "2026-11-01")
daily = dg.DailyPartitionsDefinition(start_date=START_DATE, end_offset=1)

network_retry = dg.RetryPolicy(
    max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
