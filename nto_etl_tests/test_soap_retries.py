"""Throttling, transient faults and timeouts: what is retried, what is not, through the real client."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nto_etl.mce import data_extensions as dex
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceError, MceRateLimitedError, MceTransientError
from nto_etl.mce.settings import MceSettings
from nto_etl.mce_local import LocalMce
from nto_etl.mce_local.faults import InjectedFault
from nto_etl_tests.helpers import make_de


def calls(mce: LocalMce, op: str) -> int:
    return mce.service.calls.get(op, 0)


def test_throttled_retrieve_backs_off_and_succeeds(local_mce: LocalMce, client: MceClient) -> None:
    client.ping()
    local_mce.service.inject(InjectedFault("Retrieve", api_code=17, remaining=2))
    before = calls(local_mce, "Retrieve")
    assert client.retrieve_all("DataExtension", ["CustomerKey"]) is not None
    assert calls(local_mce, "Retrieve") - before == 3


def test_bare_http_500_is_treated_as_throttling(local_mce: LocalMce, client: MceClient) -> None:
    local_mce.service.inject(InjectedFault("GetSystemStatus", api_code=None, http_status=500))
    assert client.ping().status == "OK"


def test_throttled_create_is_retried_because_it_was_not_processed(
    local_mce: LocalMce, client: MceClient, key: str
) -> None:
    local_mce.service.inject(InjectedFault("Create", api_code=17))
    make_de(client, key)
    assert dex.describe_data_extension(client, key).customer_key == key


def test_unexpected_error_on_create_is_not_retried(local_mce: LocalMce, client: MceClient, key: str) -> None:
    client.ping()
    local_mce.service.inject(InjectedFault("Create", api_code=2, message="Unexpected error"))
    before = calls(local_mce, "Create")
    with pytest.raises(MceTransientError, match="Unexpected error") as info:
        make_de(client, key)
    assert info.value.code == 2
    assert calls(local_mce, "Create") - before == 1


def test_persistent_throttling_gives_up_with_a_typed_error(local_mce: LocalMce, client: MceClient) -> None:
    local_mce.service.inject(InjectedFault("GetSystemStatus", api_code=17, remaining=10))
    with pytest.raises(MceRateLimitedError) as info:
        client.ping()
    assert info.value.code == 17


def test_slow_answers_time_out_and_idempotent_calls_are_retried(
    local_mce: LocalMce, settings: tuple[MceSettings, object]
) -> None:
    client = MceClient(replace(settings[0], operation_timeout=0.5), backoff_seconds=0.01)
    client.ping()
    local_mce.service.inject(InjectedFault("GetSystemStatus", delay_seconds=1.0, fail=False))
    assert client.ping().status == "OK"


def test_slow_create_is_not_sent_twice(
    local_mce: LocalMce, settings: tuple[MceSettings, object], key: str
) -> None:
    client = MceClient(replace(settings[0], operation_timeout=0.5), backoff_seconds=0.01)
    client.ping()
    local_mce.service.inject(InjectedFault("Create", delay_seconds=1.0, fail=False))
    before = calls(local_mce, "Create")
    with pytest.raises(MceError, match=r"no answer within 0\.5s"):
        make_de(client, key)
    assert (
        calls(local_mce, "Create") - before == 1
    )  # MCE did the work; a blind retry would have duplicated it
