"""Shared fixtures: one local MCE per test session, real clients talking to it over HTTP and SFTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

# Retried Dagster steps wait 0 s in tests (the policy itself is what is tested, not its delays).
os.environ.setdefault("NTO_RETRY_DELAY", "0")
os.environ.setdefault("NTO_RETRIES", "1")

import pytest
from sshfs import SSHFileSystem

from nto_etl import transfer
from nto_etl.connections import local_settings
from nto_etl.mce.client import MceClient
from nto_etl.mce.settings import MceSettings
from nto_etl.mce_local import LocalMce
from nto_etl.transfer import SftpSettings


@pytest.fixture(scope="session")
def local_mce() -> Iterator[LocalMce]:
    with LocalMce() as mce:
        yield mce


@pytest.fixture
def settings(local_mce: LocalMce) -> tuple[MceSettings, SftpSettings]:
    return local_settings(local_mce.info)


@pytest.fixture
def client(settings: tuple[MceSettings, SftpSettings]) -> MceClient:
    return MceClient(settings[0], backoff_seconds=0.01)


@pytest.fixture
def sftp(settings: tuple[MceSettings, SftpSettings]) -> Iterator[SSHFileSystem]:
    """A connection closed after the test: the session's local MCE, like MCE, takes ten at a time."""
    with transfer.sftp_session(settings[1]) as fs:
        yield fs


@pytest.fixture
def key() -> str:
    """A unique external key, so tests sharing the session's local MCE never collide."""
    return "T_" + uuid.uuid4().hex[:12]


@pytest.fixture(autouse=True)
def _no_leftover_faults(local_mce: LocalMce) -> Iterator[None]:
    yield
    local_mce.service.faults.clear()
    local_mce.service.system_status = "OK"
