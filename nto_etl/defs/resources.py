"""Resources: MCE (SOAP + Enhanced FTP), the pipeline's file locations, and the DuckDB warehouse.

Real tenants are configured by environment variables (secrets as `dg.EnvVar`, never
resolved at import time). Without them the pipeline talks to a local MCE whose
connection file `nto-etl mce-local --info-file` wrote (default .state/mce-local.json).
"""

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from nto_etl import transfer
from nto_etl.connections import local_settings
from nto_etl.mce.client import MceClient
from nto_etl.mce.settings import MceSettings, env_flag, env_number, env_verify_tls
from nto_etl.secrets import Secret
from nto_etl.transfer import SftpSettings
from nto_etl.warehouse.connection import warehouse_config

DEFAULT_LOCAL_INFO = ".state/mce-local.json"
STATUS_TTL_SECONDS = 60.0  # MCE asks for GetSystemStatus no more than once a minute
_status_checked: dict[str, float] = {}
_status_lock = threading.Lock()


class MceResource(dg.ConfigurableResource):
    """One MCE business unit: the SOAP client and the Enhanced FTP.

    Set `local_info` to a local MCE's connection file, or the tenant fields (from
    NTO_MCE_* / NTO_SFTP_* variables, see README).
    """

    local_info: str | None = None
    auth_url: str | None = None
    soap_url: str | None = None
    client_id: str = ""
    client_secret: str = ""
    account_id: str | None = None
    auth_mode: str = "oauth2"
    username: str = ""
    password: str = ""
    verify_tls: bool = True
    ca_bundle: str | None = None  # verify TLS with this CA bundle instead of the system's
    sftp_host: str = ""
    sftp_port: int = 22
    sftp_username: str = ""
    sftp_password: str = ""
    sftp_key_file: str | None = None
    sftp_known_hosts: str | None = None
    sftp_check_host_key: bool = True
    operation_timeout: float = 120.0
    import_timeout: float = 3600.0

    _client: MceClient | None = PrivateAttr(default=None)

    def settings(self) -> tuple[MceSettings, SftpSettings]:
        if self.local_info:
            path = Path(self.local_info)
            if not path.exists():
                raise dg.Failure(
                    description=f"no local MCE connection file at {path}: start one with "
                    f"`nto-etl mce-local --state-dir .state/mce --info-file {path}` or set NTO_MCE_AUTH_URL "
                    "and the other NTO_MCE_* variables for a real tenant"
                )
            mce, sftp = local_settings(json.loads(path.read_text()))
            return replace(mce, operation_timeout=self.operation_timeout), sftp
        mce = MceSettings(
            auth_url=self.auth_url,
            soap_url=self.soap_url,
            client_id=self.client_id,
            client_secret=Secret(self.client_secret),
            account_id=self.account_id,
            auth_mode=self.auth_mode,  # type: ignore[arg-type]
            username=self.username,
            password=Secret(self.password),
            verify_tls=self.ca_bundle or self.verify_tls,
            operation_timeout=self.operation_timeout,
        )
        sftp = SftpSettings(
            host=self.sftp_host,
            port=self.sftp_port,
            username=self.sftp_username,
            password=Secret(self.sftp_password),
            key_file=self.sftp_key_file,
            known_hosts=self.sftp_known_hosts,
            check_host_key=self.sftp_check_host_key,
        )
        return mce, sftp

    def client(self) -> MceClient:
        """The run's client, built once; GetSystemStatus checked before first use (at most once a minute)."""
        if self._client is None:
            self._client = MceClient(self.settings()[0])
        endpoint = self._client.soap.settings.soap_url or self._client.soap.settings.auth_url or ""
        with _status_lock:
            fresh = time.monotonic() - _status_checked.get(endpoint, -1e9) < STATUS_TTL_SECONDS
        if not fresh:
            self._client.ping()  # raises MceUnavailableError with MCE's status: one clear failure
            with _status_lock:
                _status_checked[endpoint] = time.monotonic()
        return self._client

    @contextmanager
    def sftp(self) -> Iterator[Any]:
        """An Enhanced FTP session, closed at the end of the block."""
        with transfer.sftp_session(self.settings()[1]) as fs:
            yield fs


class PipelineStorage(dg.ConfigurableResource):
    """Where files live: the CRM drop and inbound locations (fsspec URLs) and the local work area."""

    crm_drop_url: str = "data/sample/crm"
    web_analytics_url: str = "data/sample/web_analytics/page_views"
    crm_inbound_url: str = ".state/pipeline/crm_inbound"
    work_dir: str = ".state/pipeline"

    def export_url(self, dataset: str, partition: str) -> str:
        return f"{self.crm_drop_url.rstrip('/')}/{dataset}/{dataset}_{partition}.csv"

    def web_analytics_file(self, prefix: str, partition: str) -> str:
        return f"{self.web_analytics_url.rstrip('/')}/{prefix}_{partition}.csv"

    def staging_dir(self, dataset: str) -> Path:
        return Path(self.work_dir) / "staging" / dataset

    def upload_dir(self, dataset: str) -> Path:
        return Path(self.work_dir) / "uploads" / dataset


def _env(name: str, default: str | None = None) -> Any:
    """A secret or setting: an EnvVar when the variable is set (resolved at run time), else a default."""
    return dg.EnvVar(name) if name in os.environ else default


def mce_resource() -> MceResource:
    """The tenant's from NTO_MCE_* and NTO_SFTP_* (secrets resolved at run time; the other
    settings read as `MceSettings.from_env` and `SftpSettings.from_env` read them), else the
    local MCE's."""
    env = os.environ
    if "NTO_MCE_AUTH_URL" in env or "NTO_MCE_SOAP_URL" in env:
        verify = env_verify_tls(env, "NTO_MCE_VERIFY_TLS")
        return MceResource(
            auth_url=_env("NTO_MCE_AUTH_URL"),
            soap_url=_env("NTO_MCE_SOAP_URL"),
            client_id=_env("NTO_MCE_CLIENT_ID", ""),
            client_secret=_env("NTO_MCE_CLIENT_SECRET", ""),
            account_id=_env("NTO_MCE_ACCOUNT_ID"),
            auth_mode=os.environ.get("NTO_MCE_AUTH_MODE", "oauth2"),
            username=_env("NTO_MCE_USERNAME", ""),
            password=_env("NTO_MCE_PASSWORD", ""),
            verify_tls=bool(verify),
            ca_bundle=verify if isinstance(verify, str) else None,
            operation_timeout=env_number(env, "NTO_MCE_OPERATION_TIMEOUT", "120", float),
            sftp_host=_env("NTO_SFTP_HOST", ""),
            sftp_port=env_number(env, "NTO_SFTP_PORT", "22", int),
            sftp_username=_env("NTO_SFTP_USERNAME", ""),
            sftp_password=_env("NTO_SFTP_PASSWORD", ""),
            sftp_key_file=_env("NTO_SFTP_KEY_FILE"),
            sftp_known_hosts=_env("NTO_SFTP_KNOWN_HOSTS"),
            sftp_check_host_key=env_flag(env, "NTO_SFTP_CHECK_HOST_KEY", True),
        )
    return MceResource(local_info=os.environ.get("NTO_MCE_LOCAL_INFO", DEFAULT_LOCAL_INFO))


def storage_resource() -> PipelineStorage:
    """The drop and inbound URLs as EnvVars when set: one may hold a password (sftp://user:pw@...),
    and Dagster shows a resource's plain values in its UI, an EnvVar's name only."""
    work = os.environ.get("NTO_WORK_DIR", ".state/pipeline")
    return PipelineStorage(
        crm_drop_url=_env("NTO_CRM_DROP_URL", "data/sample/crm"),
        web_analytics_url=_env("NTO_WEB_ANALYTICS_URL", "data/sample/web_analytics/page_views"),
        crm_inbound_url=_env("NTO_CRM_INBOUND_URL", f"{work}/crm_inbound"),
        work_dir=work,
    )


@contextmanager
def warehouse_connection(warehouse: DuckDBResource) -> Iterator[Any]:
    """The warehouse connection, closed even when the step fails.

    dagster-duckdb's get_connection closes only on success; a connection left open keeps the
    file's database instance alive and blocks connections with another configuration.
    """
    with warehouse.get_connection() as con:
        try:
            yield con
        finally:
            con.close()


def warehouse_resource() -> DuckDBResource:
    work = os.environ.get("NTO_WORK_DIR", ".state/pipeline")
    Path(work).mkdir(parents=True, exist_ok=True)
    return DuckDBResource(
        database=os.environ.get("NTO_WAREHOUSE", f"{work}/warehouse.duckdb"),
        connection_config=warehouse_config(),
    )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={"mce": mce_resource(), "storage": storage_resource(), "warehouse": warehouse_resource()}
    )
