"""The `nto-etl` command: the local MCE as a process, ping, and the demo walk-through."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from nto_etl.cli import main
from nto_etl.connections import local_settings
from nto_etl.mce import data_extensions as dex
from nto_etl.mce.client import MceClient
from nto_etl.walkthrough import run_walkthrough

REQUIRED = {
    "auth_url",
    "soap_url",
    "wsdl_url",
    "client_id",
    "client_secret",
    "account_id",
    "sftp_host",
    "sftp_port",
    "sftp_username",
    "sftp_password",
}
REPO = Path(__file__).resolve().parents[1]


def test_mce_local_process_prints_its_endpoints_and_answers_ping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nto_etl.cli", "mce-local", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert set(info) >= REQUIRED
        assert info["soap_url"].startswith("http://127.0.0.1:")
        (tmp_path / "info.json").write_text(json.dumps(info))
        assert main(["ping", "--local-info", str(tmp_path / "info.json")]) == 0
        client = MceClient(local_settings(info)[0])
        dex.create_data_extension(
            client,
            dex.DataExtensionSpec(
                "Sendable",
                "Sendable",
                (dex.DEField("Key", "Text", 10, is_primary_key=True), dex.DEField("Email", "EmailAddress")),
                sendable_field="Key",
            ),
        )
        dex.upsert_rows(
            client, "Sendable", [{"Key": f"K{i}", "Email": f"k{i}@example.com"} for i in range(7)]
        )
        capsys.readouterr()
        assert (
            main(["mce-local", "send", "--local-info", str(tmp_path / "info.json"), "--de", "Sendable"]) == 0
        )
        assert (
            ": 7 recipients" in capsys.readouterr().out
        )  # the send takes minutes: its events appear as it goes
        info["client_secret"] = "wrong"
        (tmp_path / "bad.json").write_text(json.dumps(info))
        assert main(["ping", "--local-info", str(tmp_path / "bad.json")]) == 3
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0


def test_ping_without_configuration_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("NTO_MCE_AUTH_URL", "NTO_MCE_CLIENT_ID", "NTO_MCE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["ping"]) == 2
    assert "NTO_MCE_AUTH_URL is required" in capsys.readouterr().err


def test_ping_reports_an_unreachable_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NTO_MCE_AUTH_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("NTO_MCE_CLIENT_ID", "id")
    monkeypatch.setenv("NTO_MCE_CLIENT_SECRET", "secret-value")
    assert main(["ping"]) == 4
    err = capsys.readouterr().err
    assert "unreachable" in err and "secret-value" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["backfill", "--from", "2026-11-05", "--to", "2026-11-01"],
            "--to 2026-11-01 is before --from 2026-11-05",
        ),
        (["backfill", "--from", "2026-13-01", "--to", "2026-11-01"], "'2026-13-01' is not a day YYYY-MM-DD"),
        (
            ["backfill", "--from", "2026-10-31", "--to", "2026-11-01"],
            "--from 2026-10-31 is before the first daily partition, 2026-11-01 (NTO_START_DATE)",
        ),
        (
            ["backfill", "--from", "2026-11-01", "--to", "2999-01-01"],
            "--to 2999-01-01 is after the latest daily",
        ),
        (["backfill", "--from", "2026-11-01", "--to", "yesterday"], "'yesterday' is not a day YYYY-MM-DD"),
        (
            ["backfill", "--from", "2026-11-01", "--to", "2026-11-01", "--select", "group:nope"],
            "--select group:nope names no daily asset; groups: group:crm, group:mce",
        ),
        (
            ["backfill", "--from", "2026-11-01", "--to", "2026-11-01", "--select", "nope"],
            "names no daily asset",
        ),
        (["generate", "--rows", "-5", "--out", "x"], "--rows: '-5' is not a whole number of at least 1"),
        (["generate", "--rows", "10", "--days", "0", "--out", "x"], "--days: '0' is not a whole number"),
        (
            ["generate", "--rows", "10", "--start-date", "11/01/2026", "--out", "x"],
            "'11/01/2026' is not a day",
        ),
    ],
)
def test_bad_arguments_are_named_before_anything_runs(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]  # nothing written


def test_local_mce_refuses_non_loopback_addresses() -> None:
    from nto_etl.mce_local import LocalMce

    with pytest.raises(ValueError, match="loopback only"):
        LocalMce(host="0.0.0.0")  # noqa: S104 - the point of the test


def test_walkthrough_twice_imports_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_walkthrough(tmp_path, REPO / "data") == 0
    first = capsys.readouterr().out
    assert first.count("import task") == 3
    assert "created from the Contact contract" in first
    assert run_walkthrough(tmp_path, REPO / "data") == 0
    second = capsys.readouterr().out
    assert second.count("nothing to do") == 3
    assert "import task" not in second
    held = [line for line in first.splitlines() if "holds" in line]
    assert held == [line for line in second.splitlines() if "holds" in line]


def test_mce_local_send_into_a_stopped_state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nto_etl.mce_local import LocalMce

    with LocalMce(tmp_path) as mce:
        client = MceClient(local_settings(mce.info)[0])
        dex.create_data_extension(
            client,
            dex.DataExtensionSpec(
                "Offline",
                "Offline",
                (dex.DEField("Key", "Text", 10, is_primary_key=True),),
                sendable_field="Key",
            ),
        )
        dex.upsert_rows(client, "Offline", [{"Key": f"K{i}"} for i in range(12)])
    assert (
        main(
            [
                "mce-local",
                "send",
                "--state-dir",
                str(tmp_path),
                "--de",
                "Offline",
                "--at",
                "2026-11-02T09:00",
                "--seed",
                "4",
            ]
        )
        == 0
    )
    assert "12 recipients" in capsys.readouterr().out
    with LocalMce(tmp_path) as mce:
        client = MceClient(local_settings(mce.info)[0])
        sent = client.retrieve_all(
            "SentEvent",
            ["SubscriberKey", "EventDate"],
            client.simple_filter("EventDate", "between", datetime(2026, 11, 2, 9), datetime(2026, 11, 2, 10)),
        )
        assert len(sent) == 12
