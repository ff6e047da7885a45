"""The Enhanced FTP through sshfs against the local MCE's real SFTP server."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from sshfs import SSHFileSystem

from nto_etl import openssh, transfer
from nto_etl.mce.errors import MceAuthenticationError, MceUnreachableError
from nto_etl.mce.settings import MceSettings
from nto_etl.mce_local import LocalMce
from nto_etl.secrets import Secret
from nto_etl.transfer import SftpSettings


def test_enhanced_ftp_layout(sftp: SSHFileSystem) -> None:
    assert {Path(p).name for p in sftp.ls("/", detail=False)} >= {"Import", "Export", "Reports"}


def test_atomic_upload_reports_checksum_and_leaves_no_part_file(sftp: SSHFileSystem, tmp_path: Path) -> None:
    payload = b"SubscriberKey,Email\r\n" + b"x,y@example.com\r\n" * 200_000
    local = tmp_path / "big.csv"
    local.write_bytes(payload)
    result = transfer.upload_atomic(sftp, local, "/Import/big.csv")
    assert result.size == len(payload)
    assert result.sha256 == hashlib.sha256(payload).hexdigest()
    names = [f.path for f in transfer.list_files(sftp, "/Import")]
    assert "/Import/big.csv" in names
    assert not any(n.endswith(".part") for n in names)
    back = transfer.download(sftp, "/Import/big.csv", tmp_path / "back.csv")
    assert back.sha256 == result.sha256
    assert (tmp_path / "back.csv").read_bytes() == payload


def test_upload_replaces_an_existing_file(sftp: SSHFileSystem, tmp_path: Path) -> None:
    for content in (b"first\n", b"second\n"):
        (tmp_path / "f.csv").write_bytes(content)
        transfer.upload_atomic(sftp, tmp_path / "f.csv", "/Import/replace.csv")
    assert sftp.cat_file("/Import/replace.csv") == b"second\n"


def test_listing_has_size_and_mtime(sftp: SSHFileSystem, tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes(b"12345")
    transfer.upload_atomic(sftp, tmp_path / "l.csv", "/Reports/l.csv")
    [entry] = [f for f in transfer.list_files(sftp, "/Reports") if f.path == "/Reports/l.csv"]
    assert entry.size == 5
    assert entry.mtime.year >= 2024


def test_failed_upload_leaves_nothing_behind(sftp: SSHFileSystem, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        transfer.upload_atomic(sftp, tmp_path / "absent.csv", "/Import/absent.csv")
    assert not sftp.exists("/Import/absent.csv.part")


@pytest.mark.parametrize(
    "name", ["a:b.csv", "a?b.csv", 'a"b.csv', "a*b.csv", "a<b>.csv", "a|b.csv", "a\\b.csv"]
)
def test_the_enhanced_ftp_refuses_the_characters_mce_refuses_in_names(
    sftp: SSHFileSystem, tmp_path: Path, name: str
) -> None:
    (tmp_path / "f.csv").write_bytes(b"x\n")
    with pytest.raises((OSError, asyncssh.SFTPError), match="file names can't contain"):
        sftp.put_file(str(tmp_path / "f.csv"), f"/Import/{name}")
    with pytest.raises((OSError, asyncssh.SFTPError)):  # sshfs words this one its own way
        sftp.mkdir(f"/Import/{name[:-4]}")
    assert not sftp.exists(f"/Import/{name[:-4]}")
    transfer.upload_atomic(sftp, tmp_path / "f.csv", "/Import/fine.csv")
    with pytest.raises((OSError, asyncssh.SFTPError), match="file names can't contain"):
        sftp.mv("/Import/fine.csv", f"/Import/{name}")
    assert not sftp.exists(f"/Import/{name}")


def test_a_file_name_takes_no_character_mce_refuses() -> None:
    assert transfer.file_name_part('NTO:Contacts/EU?*<>|"\\\t') == "NTO_Contacts_EU________"
    assert transfer.file_name_part("NTO_Contacts") == "NTO_Contacts"


def test_unknown_host_key_is_refused(settings: tuple[MceSettings, SftpSettings], tmp_path: Path) -> None:
    other = tmp_path / "known_hosts"
    key = asyncssh.generate_private_key("ssh-ed25519")
    sftp_settings = settings[1]
    other.write_text(f"[{sftp_settings.host}]:{sftp_settings.port} {key.export_public_key().decode()}")
    with pytest.raises(MceAuthenticationError, match=r"host key .* is not the one in known_hosts"):
        transfer.open_sftp(replace(sftp_settings, known_hosts=str(other))).ls("/")


def test_host_key_checking_is_on_by_default() -> None:
    options = SftpSettings(
        host="mc123.ftp.marketingcloudops.com", username="u", password=Secret("p")
    ).connect_options()
    assert options["known_hosts"] is not None
    insecure = SftpSettings(host="h", username="u", password=Secret("p"), check_host_key=False)
    assert insecure.connect_options()["known_hosts"] is None


def test_bad_password_is_refused(settings: tuple[MceSettings, SftpSettings]) -> None:
    with pytest.raises(MceAuthenticationError, match="SFTP login refused"):
        transfer.open_sftp(replace(settings[1], password=Secret("wrong"))).ls("/")


def test_key_login(local_mce: LocalMce, settings: tuple[MceSettings, SftpSettings], tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "id_ed25519"
    key.write_private_key(str(key_file))
    authorized = Path(local_mce.info.state_dir) / "authorized_keys"
    authorized.write_bytes(key.export_public_key())
    try:
        fs = transfer.open_sftp(replace(settings[1], password=Secret(""), key_file=str(key_file)))
        assert "Import" in {Path(p).name for p in fs.ls("/", detail=False)}
    finally:
        authorized.unlink()


def test_unreachable_sftp(settings: tuple[MceSettings, SftpSettings]) -> None:
    with pytest.raises(MceUnreachableError, match="cannot reach SFTP"):
        transfer.open_sftp(replace(settings[1], port=9))


# -- large files through OpenSSH's sftp client ------------------------------------------------------
@pytest.fixture
def sftp_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    """Every sftp command the transfers ran (the real client still runs), with its environment."""
    runs: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.run

    def spy(command: list[str], *args: Any, **kwargs: Any) -> Any:
        runs.append((list(command), dict(kwargs.get("env") or {})))
        return real(command, *args, **kwargs)

    monkeypatch.setattr(openssh.subprocess, "run", spy)
    return runs


def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(openssh.MIN_BYTES + 12345))
    return path


def test_large_files_go_through_openssh_when_it_is_installed(
    settings: tuple[MceSettings, SftpSettings],
    tmp_path: Path,
    sftp_runs: list[tuple[list[str], dict[str, str]]],
) -> None:
    local = big_file(tmp_path)
    with transfer.sftp_session(settings[1]) as fs:
        up = transfer.upload_atomic(fs, local, "/Import/large file.bin")
        names = [f.path for f in transfer.list_files(fs, "/Import")]
        down = transfer.download(fs, "/Import/large file.bin", tmp_path / "back.bin")
        small = tmp_path / "small.csv"
        small.write_bytes(b"a,b\n1,2\n")
        transfer.upload_atomic(fs, small, "/Import/small.csv")
    assert up.sha256 == down.sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
    assert "/Import/large file.bin" in names and not any(n.endswith(".part") for n in names)
    assert openssh.available(), "make test installs OpenSSH's client (Debian: openssh-client)"
    assert len(sftp_runs) == 2  # the large upload and download; the small file went through asyncssh
    password = settings[1].password.reveal()
    for command, env in sftp_runs:
        assert password not in " ".join(command)
        assert "StrictHostKeyChecking=yes" in command
        assert env[openssh.ASKPASS_VARIABLE] == password  # only in the child's environment


def test_openssh_can_be_switched_off(
    settings: tuple[MceSettings, SftpSettings],
    tmp_path: Path,
    sftp_runs: list[tuple[list[str], dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(openssh.ENABLE_VARIABLE, "false")
    local = big_file(tmp_path)
    with transfer.sftp_session(settings[1]) as fs:
        up = transfer.upload_atomic(fs, local, "/Import/asyncssh.bin")
    assert up.sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
    assert sftp_runs == []


def test_openssh_logs_in_with_a_key_file(
    local_mce: LocalMce, settings: tuple[MceSettings, SftpSettings], tmp_path: Path
) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "id_ed25519"
    key.write_private_key(str(key_file))
    key_file.chmod(0o600)
    authorized = Path(local_mce.info.state_dir) / "authorized_keys"
    authorized.write_bytes(key.export_public_key())
    try:
        with transfer.sftp_session(replace(settings[1], password=Secret(""), key_file=str(key_file))) as fs:
            local = big_file(tmp_path)
            up = transfer.upload_atomic(fs, local, "/Import/by_key.bin")
            assert fs.size("/Import/by_key.bin") == up.size
    finally:
        authorized.unlink()


def test_openssh_refuses_a_changed_host_key_and_a_wrong_password(
    settings: tuple[MceSettings, SftpSettings], tmp_path: Path
) -> None:
    assert openssh.available(), "make test installs OpenSSH's client (Debian: openssh-client)"
    other = tmp_path / "known_hosts"
    key = asyncssh.generate_private_key("ssh-ed25519")
    good = settings[1]
    other.write_text(f"[{good.host}]:{good.port} {key.export_public_key().decode()}")
    local = big_file(tmp_path)
    with transfer.sftp_session(good) as fs:
        fs.settings = replace(good, known_hosts=str(other))
        with pytest.raises(MceAuthenticationError, match=r"host key .* is not the one in known_hosts"):
            transfer.upload_atomic(fs, local, "/Import/never.bin")
        fs.settings = replace(good, password=Secret("wrong-password-123"))
        with pytest.raises(MceAuthenticationError, match="SFTP login refused") as info:
            transfer.upload_atomic(fs, local, "/Import/never.bin")
        assert "wrong-password-123" not in str(info.value)
        assert not fs.exists("/Import/never.bin") and not fs.exists("/Import/never.bin.part")


def test_a_connection_dropped_mid_upload_leaves_nothing_and_the_retry_succeeds(
    local_mce: LocalMce, settings: tuple[MceSettings, SftpSettings], tmp_path: Path
) -> None:
    local = big_file(tmp_path)
    local_mce.sftp_faults.drop_after_bytes, local_mce.sftp_faults.drops_remaining = 2 * 1024 * 1024, 1
    with transfer.sftp_session(settings[1]) as fs:
        with pytest.raises(OSError, match=r"sftp to .* failed"):
            transfer.upload_atomic(fs, local, "/Import/dropped.bin")
        assert not fs.exists("/Import/dropped.bin") and not fs.exists("/Import/dropped.bin.part")
        up = transfer.upload_atomic(fs, local, "/Import/dropped.bin")
        assert fs.size("/Import/dropped.bin") == up.size == local.stat().st_size
    assert local_mce.sftp_faults.drops == 1


@pytest.mark.parametrize("through_openssh", [True, False])
def test_an_upload_lands_only_if_before_rename_allows_it(
    settings: tuple[MceSettings, SftpSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    through_openssh: bool,
) -> None:
    """The sync asks, once the bytes are there, whether its claim on the import still holds;
    the file already in place (another run's, being imported) is untouched if not."""
    if not through_openssh:
        monkeypatch.setenv(openssh.ENABLE_VARIABLE, "false")
    local = big_file(tmp_path)
    target = "/Import/gated.bin"
    with transfer.sftp_session(settings[1]) as fs:
        fs.pipe_file(target, b"the file another run's import reads")
        asked: list[bool] = []

        def refuse() -> bool:
            asked.append(True)
            return False

        with pytest.raises(transfer.UploadWithdrawn):
            transfer.upload_atomic(fs, local, target, before_rename=refuse)
        assert asked == [True]
        assert fs.cat_file(target) == b"the file another run's import reads"
        assert not [n for n in fs.ls("/Import", detail=False) if n.endswith(".part")]
        sent = transfer.upload_atomic(fs, local, target, before_rename=lambda: True)
        assert fs.cat_file(target) == local.read_bytes()
    assert sent.sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
