"""MCE server time: Central Standard Time, with no daylight saving."""

from datetime import datetime, timedelta, timezone

MCE_TIMEZONE = timezone(timedelta(hours=-6), "CST")


def mce_now() -> datetime:
    """Now, as MCE's server clock reads it (naive, CST)."""
    return datetime.now(MCE_TIMEZONE).replace(tzinfo=None, microsecond=0)
