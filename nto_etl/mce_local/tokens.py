"""Credentials and tokens of the local MCE: OAuth2 client credentials, legacy users, user tokens.

Tokens expire like MCE's: 20 minutes of life, `expires_in` reported two minutes short.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TOKEN_LIFETIME = 1200.0
REPORTED_SHORTFALL = 120.0
USER_TOKEN_LIFETIME = 30.0


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    account_id: str
    username: str
    password: str
    sftp_username: str
    sftp_password: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls(
            client_id=secrets.token_hex(12),
            client_secret=secrets.token_urlsafe(24),
            account_id=str(500_000_000 + secrets.randbelow(99_999_999)),
            username="nto_api_user",
            password=secrets.token_urlsafe(18),
            sftp_username=str(100_000_000 + secrets.randbelow(899_999_999)),
            sftp_password=secrets.token_urlsafe(18),
        )


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {
            "error": error,
            "error_description": description,
            "error_uri": "https://developer.salesforce.com/docs",
        }


class TokenIssuer:
    def __init__(
        self,
        credentials: Credentials,
        *,
        lifetime: float = TOKEN_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self.lifetime = lifetime
        self._clock = clock
        self._tokens: dict[str, float] = {}
        self._user_tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self.tokens_issued = 0

    def issue(self, request: dict[str, Any], base_url: str) -> dict[str, Any]:
        if request.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "Use grant_type client_credentials.")
        c = self.credentials
        if not secrets.compare_digest(str(request.get("client_id", "")), c.client_id):
            raise OAuthError(
                401,
                "invalid_client",
                "Invalid client ID. Use the client ID in Marketing Cloud Installed Packages.",
            )
        if not secrets.compare_digest(str(request.get("client_secret", "")), c.client_secret):
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        account = request.get("account_id")
        if account not in (None, "") and str(account) != c.account_id:
            raise OAuthError(
                401, "unauthorized_client", f"The client is not authorized for account {account}."
            )
        token = secrets.token_urlsafe(48)
        with self._lock:
            now = self._clock()
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + self.lifetime
            self.tokens_issued += 1
        reported = max(1, int(self.lifetime - min(REPORTED_SHORTFALL, self.lifetime / 10)))
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": reported,
            "scope": "data_extensions_read data_extensions_write email_read email_write",
            "soap_instance_url": base_url + "/",
            "rest_instance_url": base_url + "/",
        }

    def valid(self, token: str) -> bool:
        with self._lock:
            expires = self._tokens.get(token)
            return expires is not None and expires > self._clock()

    def expire_all(self) -> None:
        """Every issued token stops working now (a test hook for expiry mid-session)."""
        with self._lock:
            self._tokens.clear()

    def check_user(self, username: str, password: str) -> bool:
        c = self.credentials
        return secrets.compare_digest(username, c.username) and secrets.compare_digest(password, c.password)

    def user_token(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._user_tokens[token] = self._clock() + USER_TOKEN_LIFETIME
        return token

    def user_token_valid(self, token: str) -> bool:
        with self._lock:
            expires = self._user_tokens.get(token)
            return expires is not None and expires > self._clock()
