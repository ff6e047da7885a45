"""The Enhanced FTP through sshfs against the local MCE's real SFTP server."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest
from sshfs import SSHFileSystem

from nto_etl import transfer
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
