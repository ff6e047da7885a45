"""How to reach one MCE business unit: endpoints, credentials and client behaviour.

Built from the environment (`from_env`) for real tenants; the local MCE hands out the
same structure for itself. Nothing here talks to the network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from nto_etl.mce.errors import MceConfigurationError
from nto_etl.secrets import Secret

AuthMode = Literal["oauth2", "username"]
ENV_PREFIX = "NTO_MCE_"


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

        verify = get("VERIFY_TLS", "true")
        verify_tls: bool | str = (
            verify if verify.lower() not in {"true", "false", "1", "0"} else (verify.lower() in {"true", "1"})
        )
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
            verify_tls=verify_tls,
            operation_timeout=float(get("OPERATION_TIMEOUT", "120")),
        )
