"""MCE server time: Central Standard Time, with no daylight saving.

The local MCE's clock can be moved forward (`advance`) so tests and demos can watch
late-arriving tracking events appear without waiting.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta, timezone

MCE_TIMEZONE = timezone(timedelta(hours=-6), "CST")
_offset = timedelta(0)


def mce_now() -> datetime:
    """Now, as MCE's server clock reads it (naive, CST)."""
    return (datetime.now(MCE_TIMEZONE) + _offset).replace(tzinfo=None, microsecond=0)


@contextmanager
def advance(by: timedelta) -> Iterator[None]:
    """Run the local MCE's clock `by` ahead inside the block."""
    global _offset
    before = _offset
    _offset = before + by
    try:
        yield
    finally:
        _offset = before


def reading(moment: datetime) -> AbstractContextManager[None]:
    """Run the local MCE's clock at `moment` (MCE time) inside the block, ahead or back, so
    what is counted back from MCE's clock does not depend on the day it runs."""
    return advance(moment - mce_now())
