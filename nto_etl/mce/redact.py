"""Keep credentials out of logs: zeep logs whole SOAP envelopes (with the token) at DEBUG."""

from __future__ import annotations

import logging
import re

PATTERNS = [
    re.compile(rb"(<(?:\w+:)?fueloauth[^>]*>)[^<]*(</)"),
    re.compile(rb"(<(?:\w+:)?Password[^>]*>)[^<]*(</)"),
]


def _redact_bytes(value: bytes) -> bytes:
    for pattern in PATTERNS:
        value = pattern.sub(rb"\1***\2", value)
    return value


def redact(value: object) -> object:
    if isinstance(value, str):
        return _redact_bytes(value.encode()).decode()
    if isinstance(value, bytes):
        return _redact_bytes(value)
    return value


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a) for a in args)
        record.msg = redact(record.msg)
        return True


def install() -> None:
    """Attach the filter to the loggers that print envelopes (idempotent)."""
    for name in ("zeep.transports", "zeep.wsdl.bindings.soap"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
