"""Authentication for SOAP calls: OAuth2 server-to-server tokens, or the legacy UsernameToken.

MCE throttles clients that fetch a token per call, so one token is cached and reused
until shortly before `expires_in` runs out; a call refused for an expired token
invalidates it and the SOAP funnel retries once with a fresh one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import requests
from lxml import etree
from zeep.wsse.username import UsernameToken

from nto_etl.mce.errors import MceAuthenticationError, MceTransientError, MceUnreachableError
from nto_etl.mce.wsdl import FUELOAUTH_NS
from nto_etl.secrets import Secret

log = logging.getLogger(__name__)

# Refresh this long before MCE says the token expires (its expires_in is already ~2 min short).
REFRESH_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class AccessToken:
    value: Secret
    expires_at: float  # monotonic clock
    soap_instance_url: str | None
    rest_instance_url: str | None


class SoapAuth(Protocol):
    """What the SOAP funnel needs from an authentication method."""

    def soap_headers(self) -> list[etree._Element]: ...

    def wsse(self) -> UsernameToken | None: ...

    def invalidate(self) -> None: ...

    def soap_endpoint(self) -> str | None: ...


class OAuth2Auth:
    """Client-credentials tokens from `{auth_url}/v2/token`, cached and refreshed before expiry."""

    def __init__(
        self,
        session: requests.Session,
        auth_url: str,
        client_id: str,
        client_secret: Secret,
        account_id: str | None = None,
        *,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._token_url = auth_url.rstrip("/") + "/v2/token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._account_id = account_id
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self.tokens_fetched = 0

    def token(self) -> AccessToken:
        """The cached token, or a new one when it is missing or about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._token.expires_at:
                self._token = self._fetch()
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def soap_headers(self) -> list[etree._Element]:
        header = etree.Element(f"{{{FUELOAUTH_NS}}}fueloauth", nsmap={None: FUELOAUTH_NS})  # type: ignore[dict-item]
        header.text = self.token().value.reveal()
        return [header]

    def wsse(self) -> UsernameToken | None:
        return None

    def soap_endpoint(self) -> str | None:
        url = self.token().soap_instance_url
        if not url:
            return None
        if "://" not in url:
            url = "https://" + url
        return url.rstrip("/") + "/Service.asmx"

    def _fetch(self) -> AccessToken:
        body = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret.reveal(),
        }
        if self._account_id:
            body["account_id"] = self._account_id
        try:
            response = self._session.post(self._token_url, json=body, timeout=self._timeout)
        except requests.ConnectionError as exc:
            raise MceUnreachableError(
                f"cannot reach the MCE auth endpoint {self._token_url}: {type(exc).__name__}",
                operation="token",
            ) from None
        except requests.Timeout:
            raise MceUnreachableError(
                f"the MCE auth endpoint {self._token_url} did not answer in {self._timeout}s",
                operation="token",
            ) from None
        if response.status_code in (400, 401, 403):
            raise MceAuthenticationError(
                f"token request refused ({response.status_code}): {_oauth_error(response)}; "
                "check the client id, client secret and account id of the installed package",
                operation="token",
            )
        if response.status_code >= 500:
            raise MceTransientError(f"token endpoint answered HTTP {response.status_code}", operation="token")
        if response.status_code != 200:
            raise MceAuthenticationError(
                f"unexpected token response HTTP {response.status_code}", operation="token"
            )
        data = response.json()
        expires_in = float(data.get("expires_in", 0))
        margin = min(REFRESH_MARGIN_SECONDS, expires_in / 4)
        self.tokens_fetched += 1
        log.info("fetched an MCE access token valid for %.0f s", expires_in)
        return AccessToken(
            value=Secret(data["access_token"]),
            expires_at=self._clock() + expires_in - margin,
            soap_instance_url=data.get("soap_instance_url"),
            rest_instance_url=data.get("rest_instance_url"),
        )


def _oauth_error(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return f"{data.get('error', 'error')}: {data.get('error_description', '')}".strip(": ")


class UsernameTokenAuth:
    """Legacy WS-Security UsernameToken login for older accounts (API user + password)."""

    def __init__(self, username: str, password: Secret, soap_url: str) -> None:
        self._username = username
        self._password = password
        self._soap_url = soap_url

    def soap_headers(self) -> list[etree._Element]:
        return []

    def wsse(self) -> UsernameToken | None:
        return UsernameToken(self._username, self._password.reveal())

    def invalidate(self) -> None:
        """Nothing is cached: a refused password stays refused."""

    def soap_endpoint(self) -> str | None:
        return self._soap_url
