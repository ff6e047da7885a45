"""OAuth2 tokens, the legacy login and entity direct login, through the real client to the local MCE."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from nto_etl.connections import local_settings
from nto_etl.mce.auth import OAuth2Auth
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceAuthenticationError, MceUnavailableError, MceUnreachableError
from nto_etl.mce.settings import MceSettings
from nto_etl.mce_local import LocalMce
from nto_etl.secrets import Secret


def test_one_token_serves_many_calls(local_mce: LocalMce, client: MceClient) -> None:
    before = local_mce.issuer.tokens_issued
    for _ in range(5):
        client.ping()
    assert local_mce.issuer.tokens_issued - before == 1
    assert isinstance(client.soap.auth, OAuth2Auth)
    assert client.soap.auth.tokens_fetched == 1


def test_token_refreshed_before_it_expires() -> None:
    with LocalMce(token_lifetime=2.0) as mce:
        settings, _ = local_settings(mce.info)
        client = MceClient(settings)
        client.ping()
        first = client.soap.auth.token().value  # type: ignore[attr-defined]
        time.sleep(2.2)
        client.ping()  # would be refused with the old token: it must have been refreshed first
        assert client.soap.auth.token().value != first  # type: ignore[attr-defined]
        assert mce.issuer.tokens_issued == 2
        assert mce.service.auth_failures == 0  # refreshed ahead of expiry, never refused


def test_token_expiring_mid_session_is_refreshed_once(local_mce: LocalMce, client: MceClient) -> None:
    client.ping()
    local_mce.issuer.expire_all()
    before = local_mce.issuer.tokens_issued
    refused = local_mce.service.auth_failures
    assert client.ping().status == "OK"
    assert local_mce.issuer.tokens_issued - before == 1
    assert local_mce.service.auth_failures - refused == 1  # refused once, then retried with a new token


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"client_secret": Secret("wrong")}, "Client authentication failed"),
        ({"client_id": "nobody"}, "Invalid client ID"),
        ({"account_id": "1"}, "not authorized for account 1"),
    ],
)
def test_bad_credentials_are_a_typed_error(
    settings: tuple[MceSettings, object], change: dict, expected: str
) -> None:
    client = MceClient(replace(settings[0], **change))
    with pytest.raises(MceAuthenticationError, match=expected):
        client.ping()


def test_legacy_username_token_login(local_mce: LocalMce) -> None:
    settings, _ = local_settings(local_mce.info, legacy_login=True)
    assert MceClient(settings).ping().status == "OK"
    with pytest.raises(MceAuthenticationError, match="Login failed"):
        MceClient(replace(settings, password=Secret("nope"))).ping()


def test_unreachable_endpoint(settings: tuple[MceSettings, object]) -> None:
    client = MceClient(replace(settings[0], auth_url="http://127.0.0.1:9", max_retries=0))
    with pytest.raises(MceUnreachableError, match="cannot reach the MCE auth endpoint"):
        client.ping()


def test_ping_fails_clearly_when_mce_is_in_maintenance(local_mce: LocalMce, client: MceClient) -> None:
    local_mce.service.system_status = "InMaintenance"
    with pytest.raises(MceUnavailableError, match="InMaintenance"):
        client.ping()


def test_user_token_for_entity_direct_login(local_mce: LocalMce, client: MceClient) -> None:
    token = client.get_user_token()
    assert token.login_url.endswith("/Integration/ILogin.aspx")
    assert local_mce.issuer.user_token_valid(token.token)
    assert not local_mce.issuer.user_token_valid(token.token + "x")


def test_secrets_never_appear_in_reprs(settings: tuple[MceSettings, object]) -> None:
    mce_settings = settings[0]
    secret = mce_settings.client_secret.reveal()
    assert secret not in repr(mce_settings)
    assert secret not in str(mce_settings)
