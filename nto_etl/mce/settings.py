"""How to reach one MCE business unit: endpoints, credentials and client behaviour.

Built from the environment (`from_env`) for real tenants; the local MCE hands out the
same structure for itself. Nothing here talks to the network.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from nto_etl.mce.errors import MceConfigurationError
from nto_etl.secrets import Secret

AuthMode = Literal["oauth2", "username"]
ENV_PREFIX = "NTO_MCE_"
YES, NO = {"true", "1", "yes"}, {"false", "0", "no"}
Number = TypeVar("Number", int, float)


def env_number(
    env: Mapping[str, str], name: str, default: str, kind: Callable[[str], Number], *, zero: bool = False
) -> Number:
    """The number in variable `name` (`default` when unset), more than 0 (or 0 too, with `zero`),
    or an error that names the variable."""
    text = env.get(name, default).strip()
    try:
        value = kind(text)
    except ValueError:
        raise MceConfigurationError(
            f"{name} must be a number of {kind.__name__} type, got {text!r}"
        ) from None
    if value < 0 or (value == 0 and not zero):
        raise MceConfigurationError(f"{name} must be {'0 or more' if zero else 'more than 0'}, got {text!r}")
    return value


def check_endpoint(name: str, url: str) -> None:
    """An https URL with a host; plain http only for a host on loopback (a local MCE), so that
    no secret crosses a network unencrypted."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise MceConfigurationError(f"{name} must be a URL such as https://host, got {url!r}")
    if parts.scheme == "http" and not _on_loopback(parts.hostname):
        raise MceConfigurationError(f"{name} must use https (http only reaches a local MCE), got {url!r}")


def _on_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def env_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no variable: true/false, 1/0 or yes/no in any case; anything else names the variable."""
    text = env.get(name, "").strip().lower()
    if not text:
        return default
    if text not in YES | NO:
        raise MceConfigurationError(f"{name} must be true or false, got {text!r}")
    return text in YES


def env_verify_tls(env: Mapping[str, str], name: str) -> bool | str:
    """True, false, or the path of a CA bundle to verify TLS with."""
    text = env.get(name, "true").strip()
    if text.lower() in YES | NO:
        return text.lower() in YES
    if not Path(text).is_file():
        raise MceConfigurationError(
            f"{name} must be true, false or the path of a CA bundle; no file at {text!r}"
        )
    return text


@dataclass(frozen=True)
class MceSettings:
    """Endpoints and credentials of one business unit.

    `auth_url` is the tenant's auth base (`https://{subdomain}.auth.marketingcloudapis.com`).
    `soap_url` is optional for OAuth2: the token's `soap_instance_url` is used when it is unset.
    """

    auth_url: str | None = None
    soap_url: str | None = None
    client_id: str = ""
    client_secret: Secret = field(default_factory=lambda: Secret(""))
    account_id: str | None = None
    auth_mode: AuthMode = "oauth2"
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    verify_tls: bool | str = True
    operation_timeout: float = 120.0
    connect_timeout: float = 10.0
    max_retries: int = 4

    def __post_init__(self) -> None:
        for name, url in (("AUTH_URL", self.auth_url), ("SOAP_URL", self.soap_url)):
            if url:
                check_endpoint(ENV_PREFIX + name, url)
        if self.auth_mode == "oauth2":
            if not self.auth_url:
                raise MceConfigurationError(f"{ENV_PREFIX}AUTH_URL is required for OAuth2 authentication")
            if not self.client_id or not self.client_secret:
                raise MceConfigurationError(
                    f"{ENV_PREFIX}CLIENT_ID and {ENV_PREFIX}CLIENT_SECRET are required for OAuth2"
                )
        elif self.auth_mode == "username":
            if not self.soap_url:
                raise MceConfigurationError(f"{ENV_PREFIX}SOAP_URL is required for username login")
            if not self.username or not self.password:
                raise MceConfigurationError(f"{ENV_PREFIX}USERNAME and {ENV_PREFIX}PASSWORD are required")
        else:
            raise MceConfigurationError(f"unknown auth mode {self.auth_mode!r}: use 'oauth2' or 'username'")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MceSettings:
        """Settings from NTO_MCE_* variables; see README "Pointing at a real tenant"."""
        env = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return env.get(ENV_PREFIX + name, default).strip()

        mode = get("AUTH_MODE", "oauth2")
        return cls(
            auth_url=get("AUTH_URL") or None,
            soap_url=get("SOAP_URL") or None,
            client_id=get("CLIENT_ID"),
            client_secret=Secret(get("CLIENT_SECRET")),
            account_id=get("ACCOUNT_ID") or None,
            auth_mode=mode,  # type: ignore[arg-type]
            username=get("USERNAME"),
            password=Secret(get("PASSWORD")),
            verify_tls=env_verify_tls(env, ENV_PREFIX + "VERIFY_TLS"),
            operation_timeout=env_number(env, ENV_PREFIX + "OPERATION_TIMEOUT", "120", float),
        )
