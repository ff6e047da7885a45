"""Credentials that never show themselves in logs, reprs, metadata or exception messages."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class Secret:
    """Holds a credential; only `reveal()` returns the value, at the point of use."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def shown_url(url: str) -> str:
    """`url` as it may appear in a message, metadata or a log: a password in its user part
    (`sftp://user:password@host/...`, which fsspec accepts) replaced by `***`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
