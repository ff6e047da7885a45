"""Daily partitions, the retry policy for network assets, and how MCE errors become Dagster failures."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from nto_etl.mce.errors import MceError, MceTransientError, MceUnreachableError
from nto_etl.mce.settings import env_number

START_DATE = os.environ.get("NTO_START_DATE", "2026-11-01")
daily = dg.DailyPartitionsDefinition(start_date=START_DATE, end_offset=1)

network_retry = dg.RetryPolicy(
    max_retries=env_number(os.environ, "NTO_RETRIES", "3", int, zero=True),
    delay=env_number(os.environ, "NTO_RETRY_DELAY", "10", float, zero=True),
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)


@contextmanager
def mce_failures() -> Iterator[None]:
    """Transient MCE errors propagate (the retry policy retries them); the rest fail the step once,
    with MCE's code and message, instead of being retried to no purpose."""
    try:
        yield
    except (MceTransientError, MceUnreachableError):
        raise
    except MceError as exc:
        raise dg.Failure(
            description=str(exc),
            metadata={"mce_code": exc.code or 0, "error": type(exc).__name__},
            allow_retries=False,
        ) from None
