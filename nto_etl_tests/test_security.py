"""Secrets stay secret: never in logs, Dagster events, metadata or exceptions; checks on by default."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from nto_etl import transfer
from nto_etl.connections import local_settings
from nto_etl.contracts import Contact
from nto_etl.definitions import defs
from nto_etl.defs.crm_sync import de_key, export_key, staged_key
from nto_etl.defs.resources import PipelineStorage
from nto_etl.harness import LocalPipeline
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceAuthenticationError
from nto_etl.mce.settings import MceSettings
from nto_etl.mce_local import LocalMce
from nto_etl.secrets import Secret, shown_url
from nto_etl.staging import ExportFileError, stage_export
from nto_etl.transfer import SftpSettings
from nto_etl_tests.helpers import staging_resources

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "crm"


def secrets_of(mce: LocalMce) -> list[str]:
    c = mce.credentials
    return [c.client_secret, c.password, c.sftp_password, *mce.issuer._tokens]


def test_a_pipeline_run_leaks_no_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), LocalMce(tmp_path / "mce") as mce:
        pipeline = LocalPipeline(tmp_path, mce, SAMPLE)
        result = pipeline.run(
            dg.AssetSelection.assets(export_key("contacts"), staged_key("contacts"), de_key("contacts")),
            "2026-11-01",
        )
        assert result.success
        leaked = secrets_of(mce)
        assert len(leaked) >= 4  # a token was issued and is among them
        events = repr(result.all_events)
        metadata = repr([e.event_specific_data for e in result.get_asset_materialization_events()])
        for secret in leaked:
            assert secret not in caplog.text
            assert secret not in events
            assert secret not in metadata
        assert "fueloauth" not in caplog.text.lower() or all(s not in caplog.text for s in leaked)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sftp://nto:s3cret@crm.example.com:2222/drop", "sftp://nto:***@crm.example.com:2222/drop"),
        ("sftp://nto:p%40ss@crm.example.com/drop", "sftp://nto:***@crm.example.com/drop"),
        ("sftp://nto@crm.example.com/drop", "sftp://nto@crm.example.com/drop"),
        ("s3://nto-crm/drop", "s3://nto-crm/drop"),
        ("data/sample/crm", "data/sample/crm"),
    ],
)
def test_a_password_in_a_url_is_not_shown(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_a_refused_export_names_its_url_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(ExportFileError) as refused:
        stage_export("memory://nto:s3cret@drop/contacts/contacts_2026-11-01.csv", Contact, tmp_path)
    assert (
        str(refused.value)
        == "memory://nto:***@drop/contacts/contacts_2026-11-01.csv: the file does not exist"
    )


def test_a_crm_drop_over_sftp_with_a_password_in_its_url_never_shows_it(
    local_mce: LocalMce, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """NTO_CRM_DROP_URL may hold the drop's password (fsspec reads it from the URL): the
    assets read the drop through it, host key checked, and their metadata, failures and logs
    show `***` in its place."""
    info = local_mce.info
    password = local_mce.credentials.sftp_password
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_bytes(Path(info.sftp_known_hosts).read_bytes())
    monkeypatch.setenv("HOME", str(home))  # the URL's connection checks the host key there
    with transfer.sftp_session(local_settings(info)[1]) as fs:
        fs.makedirs("/Import/crm/contacts", exist_ok=True)
        fs.put_file(
            str(SAMPLE / "contacts" / "contacts_2026-11-01.csv"),
            "/Import/crm/contacts/contacts_2026-11-01.csv",
        )
    drop = f"sftp://{info.sftp_username}:{password}@{info.sftp_host}:{info.sftp_port}/Import/crm"
    storage = PipelineStorage(crm_drop_url=drop, work_dir=str(tmp_path / "work"))
    wanted = {export_key("contacts"), staged_key("contacts")}
    chain = [a for a in defs().assets or [] if isinstance(a, dg.AssetsDefinition) and set(a.keys) & wanted]

    def run(day: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            chain,
            partition_key=day,
            resources=staging_resources(storage, tmp_path),
            raise_on_error=False,
        )

    with caplog.at_level(logging.DEBUG):
        found, missing = run("2026-11-01"), run("2026-11-02")
    assert found.success and not missing.success
    [export] = found.asset_materializations_for_node("crm__contacts_export")
    assert (
        export.metadata["url"].value
        == f"sftp://{info.sftp_username}:***@{info.sftp_host}:{info.sftp_port}/Import/crm/contacts/contacts_2026-11-01.csv"
    )
    failure = missing.get_step_failure_events()[0].event_specific_data
    assert "no contacts export for 2026-11-02: expected sftp://" in repr(failure)
    for shown in (repr(found.all_events), repr(missing.all_events), caplog.text):
        assert password not in shown


def test_the_ui_shows_the_drops_variable_not_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Dagster's UI lists as the storage resource's configuration (the code location's
    snapshot), with a password in NTO_CRM_DROP_URL; the runs still read the URL itself."""
    from dagster._core.remote_representation.external_data import RepositorySnap

    monkeypatch.setenv("NTO_CRM_DROP_URL", "sftp://nto:s3cret@crm.example.com/drop")
    definitions = defs()
    [storage] = [
        r for r in RepositorySnap.from_def(definitions.get_repository_def()).resources if r.name == "storage"
    ]
    assert "s3cret" not in repr(storage.configured_values)
    assert "NTO_CRM_DROP_URL" in storage.configured_values["crm_drop_url"]
    with dg.build_resources(
        {"storage": definitions.get_repository_def().get_top_level_resources()["storage"]}
    ) as run:
        assert run.storage.crm_drop_url == "sftp://nto:s3cret@crm.example.com/drop"


def test_refused_credentials_do_not_echo_the_secret(
    local_mce: LocalMce, caplog: pytest.LogCaptureFixture
) -> None:
    settings, _ = local_settings(local_mce.info)
    wrong = "wrong-" + local_mce.credentials.client_secret[:6] + "-value"
    with caplog.at_level(logging.DEBUG), pytest.raises(MceAuthenticationError) as info:
        MceClient(replace(settings, client_secret=Secret(wrong))).ping()
    assert wrong not in str(info.value)
    assert wrong not in caplog.text
    assert "Secret('***')" in repr(replace(settings, client_secret=Secret(wrong)))


def test_checks_are_on_by_default_for_real_endpoints() -> None:
    settings = MceSettings(
        auth_url="https://mc123.auth.marketingcloudapis.com", client_id="id", client_secret=Secret("s")
    )
    assert settings.verify_tls is True
    assert (
        MceSettings.from_env(
            {"NTO_MCE_AUTH_URL": "https://x", "NTO_MCE_CLIENT_ID": "i", "NTO_MCE_CLIENT_SECRET": "s"}
        ).verify_tls
        is True
    )
    sftp = SftpSettings(host="mc123.ftp.marketingcloudops.com", username="u", password=Secret("p"))
    assert sftp.connect_options()["known_hosts"] is not None
    assert SftpSettings.from_env(
        {"NTO_SFTP_HOST": "h", "NTO_SFTP_USERNAME": "u", "NTO_SFTP_PASSWORD": "p"}
    ).check_host_key


TENANT = {
    "NTO_MCE_AUTH_URL": "https://mc123.auth.marketingcloudapis.com",
    "NTO_MCE_CLIENT_ID": "id",
    "NTO_MCE_CLIENT_SECRET": "secret",
    "NTO_SFTP_HOST": "mc123.ftp.marketingcloudops.com",
    "NTO_SFTP_USERNAME": "u",
    "NTO_SFTP_PASSWORD": "p",
}


def test_a_ca_bundle_is_used_by_the_client_and_by_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nto_etl.defs.resources import mce_resource

    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {**TENANT, "NTO_MCE_VERIFY_TLS": str(bundle), "NTO_MCE_OPERATION_TIMEOUT": "30"}
    assert MceSettings.from_env(env).verify_tls == str(bundle)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    mce, _ = mce_resource().process_config_and_initialize().settings()
    assert mce.verify_tls == str(bundle)  # not merely "on", with the system's CAs
    assert mce.operation_timeout == 30
    monkeypatch.setenv("NTO_MCE_VERIFY_TLS", "No")
    assert mce_resource().process_config_and_initialize().settings()[0].verify_tls is False
    assert MceSettings.from_env({**TENANT, "NTO_MCE_VERIFY_TLS": "No"}).verify_tls is False


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "NTO_MCE_VERIFY_TLS",
            "/nowhere/ca.pem",
            "must be true, false or the path of a CA bundle; no file at",
        ),
        ("NTO_MCE_OPERATION_TIMEOUT", "2m", "must be a number of float type, got '2m'"),
        ("NTO_MCE_OPERATION_TIMEOUT", "0", "must be more than 0"),
        ("NTO_SFTP_PORT", "twenty-two", "must be a number of int type, got 'twenty-two'"),
        ("NTO_SFTP_CHECK_HOST_KEY", "flase", "must be true or false, got 'flase'"),
    ],
)
def test_a_bad_setting_names_its_variable(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nto_etl.defs.resources import mce_resource
    from nto_etl.mce.errors import MceConfigurationError

    env = {**TENANT, name: value}
    with pytest.raises(MceConfigurationError, match=f"{name} {message}"):
        MceSettings.from_env(env) if name.startswith("NTO_MCE") else SftpSettings.from_env(env)
    for key, text in env.items():
        monkeypatch.setenv(key, text)
    with pytest.raises(MceConfigurationError, match=f"{name} {message}"):
        mce_resource()


def test_bad_pipeline_settings_name_their_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    from nto_etl import openssh, staging
    from nto_etl.contracts import Contact
    from nto_etl.mce.errors import MceConfigurationError

    loaded = subprocess.run(
        [sys.executable, "-c", "from nto_etl.definitions import defs; defs()"],
        env={**os.environ, "NTO_RETRIES": "three"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode != 0
    assert "NTO_RETRIES must be a number of int type, got 'three'" in loaded.stderr
    monkeypatch.setenv(openssh.ENABLE_VARIABLE, "maybe")
    with pytest.raises(MceConfigurationError, match="NTO_SFTP_OPENSSH must be true or false, got 'maybe'"):
        openssh.available()
    monkeypatch.setattr(staging, "STAGING_MEMORY", "lots")
    export = tmp_path / "contacts.csv"
    export.write_text(",".join(f.name for f in staging.de_fields(Contact)) + "\n")
    with pytest.raises(ValueError, match="NTO_STAGING_MEMORY: not a memory size: 'lots'"):
        staging.stage_export(str(export), Contact, tmp_path / "out")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mc123.auth.marketingcloudapis.com", "NTO_MCE_AUTH_URL must be a URL such as https://host"),
        ("http://mc123.auth.marketingcloudapis.com", "NTO_MCE_AUTH_URL must use https"),
        ("http://10.0.0.5:8080", "NTO_MCE_AUTH_URL must use https"),
        ("https://mc123.auth.marketingcloudapis.com", None),
        ("http://127.0.0.1:8080", None),  # a local MCE
        ("http://localhost:8080", None),
    ],
)
def test_secrets_travel_over_https_unless_to_a_local_mce(url: str, message: str | None) -> None:
    from nto_etl.mce.errors import MceConfigurationError

    env = {**TENANT, "NTO_MCE_AUTH_URL": url}
    if message is None:
        assert MceSettings.from_env(env).auth_url == url
    else:
        with pytest.raises(MceConfigurationError, match=message):
            MceSettings.from_env(env)
        with pytest.raises(
            MceConfigurationError, match=message.replace("NTO_MCE_AUTH_URL", "NTO_MCE_SOAP_URL")
        ):
            MceSettings(soap_url=url, auth_mode="username", username="u", password=Secret("p"))


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        ("sftp://mc123.ftp.marketingcloudops.com", 22, "NTO_SFTP_HOST must be a host name"),
        ("mc123.ftp.marketingcloudops.com:22", 22, r"the port goes in NTO_SFTP_PORT"),
        ("mc123.ftp.marketingcloudops.com", 0, "NTO_SFTP_PORT must be between 1 and 65535, got 0"),
        ("mc123.ftp.marketingcloudops.com", 70000, "NTO_SFTP_PORT must be between 1 and 65535"),
        ("mc123.ftp.marketingcloudops.com", 22, None),
        ("::1", 2222, None),
    ],
)
def test_the_sftp_host_is_a_host_name_and_the_port_a_port(host: str, port: int, message: str | None) -> None:
    from nto_etl.mce.errors import MceConfigurationError

    if message is None:
        assert SftpSettings(host=host, port=port, username="u", password=Secret("p")).host == host
    else:
        with pytest.raises(MceConfigurationError, match=message):
            SftpSettings(host=host, port=port, username="u", password=Secret("p"))


def test_the_local_mce_requires_credentials(local_mce: LocalMce) -> None:
    import requests

    envelope = (
        '<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Body>'
        '<ns0:SystemStatusRequestMsg xmlns:ns0="http://exacttarget.com/wsdl/partnerAPI"/></soap-env:Body>'
        "</soap-env:Envelope>"
    )
    answer = requests.post(
        local_mce.info.soap_url,
        data=envelope,
        timeout=10,
        headers={"SOAPAction": "GetSystemStatus", "Content-Type": "text/xml"},
    )
    assert answer.status_code == 500
    assert "Login failed" in answer.text
    token = requests.post(
        local_mce.info.auth_url + "/v2/token", json={"grant_type": "client_credentials"}, timeout=10
    )
    assert token.status_code == 401


def test_configuration_values_never_reach_sql_unchecked(client: MceClient) -> None:
    from nto_etl import segments

    with pytest.raises(ValueError, match="must be a 2-3 letter code"):
        segments.refresh_region(client, "OR' OR 1=1 --", "NTO Contacts")
