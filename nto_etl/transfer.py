"""Files to and from the MCE Enhanced FTP (SFTP, via fsspec's sshfs) and other fsspec locations.

Uploads are atomic: written as a `.part`, then renamed, so an import never reads a
half-written file. Every upload and download reports the SHA-256 of the bytes moved.
Host keys are checked unless explicitly switched off.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import posixpath
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncssh
from fsspec import AbstractFileSystem
from fsspec.asyn import sync
from sshfs import SSHFileSystem

from nto_etl import openssh
from nto_etl.mce.errors import MceAuthenticationError, MceConfigurationError, MceUnreachableError
from nto_etl.mce.settings import env_flag, env_number
from nto_etl.secrets import Secret

CHUNK = 4 * 1024 * 1024
# Characters MCE's Enhanced FTP refuses in a file name (SFTP Accounts in Marketing Cloud Engagement).
NOT_IN_FILE_NAMES = '\\/:*<>|?"'
# SFTP request size: larger requests mean fewer round trips through asyncssh's Python code
# (sshfs defaults to 24-120 KiB); asyncssh servers accept up to 4 MiB.
SFTP_BLOCK = 1024 * 1024
ENV_PREFIX = "NTO_SFTP_"
# AES-GCM runs about twice as fast as chacha20 on loopback (see ../STYLE notes).
CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr"]


@dataclass(frozen=True)
class SftpSettings:
    host: str
    username: str
    password: Secret = field(default_factory=lambda: Secret(""))
    port: int = 22
    key_file: str | None = None
    known_hosts: str | None = None
    check_host_key: bool = True

    def __post_init__(self) -> None:
        if not self.host or not self.username:
            raise MceConfigurationError(f"{ENV_PREFIX}HOST and {ENV_PREFIX}USERNAME are required")
        if not self.password and not self.key_file:
            raise MceConfigurationError(f"{ENV_PREFIX}PASSWORD or {ENV_PREFIX}KEY_FILE is required")
        if not _host_name(self.host):
            raise MceConfigurationError(
                f"{ENV_PREFIX}HOST must be a host name such as mc123.ftp.marketingcloudops.com "
                f"(the port goes in {ENV_PREFIX}PORT), got {self.host!r}"
            )
        if not 0 < self.port < 65536:
            raise MceConfigurationError(f"{ENV_PREFIX}PORT must be between 1 and 65535, got {self.port}")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SftpSettings:
        env = dict(os.environ) if env is None else env

        def get(name: str, default: str = "") -> str:
            return env.get(ENV_PREFIX + name, default).strip()

        return cls(
            host=get("HOST"),
            port=env_number(env, ENV_PREFIX + "PORT", "22", int),
            username=get("USERNAME"),
            password=Secret(get("PASSWORD")),
            key_file=get("KEY_FILE") or None,
            known_hosts=get("KNOWN_HOSTS") or None,
            check_host_key=env_flag(env, ENV_PREFIX + "CHECK_HOST_KEY", True),
        )

    def connect_options(self) -> dict[str, Any]:
        """asyncssh options: host-key checking on (known_hosts, default ~/.ssh/known_hosts) unless disabled."""
        known_hosts: str | None = self.known_hosts or str(Path("~/.ssh/known_hosts").expanduser())
        if not self.check_host_key:
            known_hosts = None
        options: dict[str, Any] = {
            "port": self.port,
            "username": self.username,
            "known_hosts": known_hosts,
            "encryption_algs": CIPHERS,
        }
        if self.password:
            options["password"] = self.password.reveal()
        if self.key_file:
            options["client_keys"] = [self.key_file]
        else:
            options["client_keys"] = None
            options["agent_path"] = None
        return options


class MceSftp(SSHFileSystem):
    """sshfs that remembers its settings, so `upload_atomic` and `download` can hand large files
    to OpenSSH's sftp client (about three times faster, see nto_etl.openssh)."""

    settings: SftpSettings | None = None


def open_sftp(settings: SftpSettings) -> MceSftp:
    """A fresh, connected sshfs filesystem for this run (fsspec's instance cache is skipped)."""
    where = f"{settings.username}@{settings.host}:{settings.port}"
    try:
        fs = MceSftp(settings.host, skip_instance_cache=True, **settings.connect_options())
        fs.settings = settings
        return fs
    except asyncssh.HostKeyNotVerifiable as exc:
        raise MceAuthenticationError(
            f"SFTP host key of {settings.host}:{settings.port} is not the one in known_hosts "
            f"({settings.known_hosts or '~/.ssh/known_hosts'}): {exc.reason}",
            operation="sftp connect",
        ) from None
    except PermissionError:
        raise MceAuthenticationError(
            f"SFTP login refused for {where}: check {ENV_PREFIX}USERNAME and {ENV_PREFIX}PASSWORD "
            "(MCE locks the account for 30 minutes after repeated failures)",
            operation="sftp connect",
        ) from None
    except OSError as exc:
        raise MceUnreachableError(f"cannot reach SFTP {where}: {exc}", operation="sftp connect") from None


@contextmanager
def sftp_session(settings: SftpSettings) -> Iterator[MceSftp]:
    """An SFTP connection closed on exit: MCE allows ten at a time, so none may linger until GC."""
    fs = open_sftp(settings)
    try:
        yield fs
    finally:
        close_sftp(fs)


def close_sftp(fs: SSHFileSystem) -> None:
    async def close() -> None:
        # sshfs only closes on garbage collection; close its channel pool and connection now.
        await fs._pool.close()
        fs._client.close()
        await fs._client.wait_closed()

    with suppress(Exception):  # a connection that is already gone is closed enough
        sync(fs.loop, close, timeout=10)


@dataclass(frozen=True)
class Transferred:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    mtime: datetime


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class UploadWithdrawn(Exception):
    """`upload_atomic`'s `before_rename` said no: the file was not put in place."""


def upload_atomic(
    fs: AbstractFileSystem,
    local_path: Path | str,
    remote_path: str,
    *,
    before_rename: Callable[[], bool] | None = None,
) -> Transferred:
    """Upload a local file as a `.part` beside `remote_path`, then rename it into place.

    The part's name is this upload's own, so two uploads to one name never write one part.
    `before_rename`, when given, decides once the bytes are there whether they may land: if
    it says no, the part is removed and UploadWithdrawn raised, and `remote_path` is untouched.
    `put_file` lets sshfs use asyncssh's pipelined SFTP transfer (many requests in flight),
    several times faster than writing through a file object over a high-latency link.
    """
    part = f"{remote_path}.{os.urandom(4).hex()}.part"
    size = Path(local_path).stat().st_size
    try:
        if (settings := _openssh_settings(fs, size)) is not None:
            with ThreadPoolExecutor(1) as pool:  # hash while OpenSSH sends (hashlib releases the GIL)
                digest_future = pool.submit(sha256_file, local_path)
                put = f"put {openssh.quote(str(local_path))} {openssh.quote(part)}"
                if before_rename is None:  # one session does it all
                    openssh.run_batch(
                        settings,
                        [
                            put,
                            f"-rm {openssh.quote(remote_path)}",  # '-': no error when there is none
                            f"rename {openssh.quote(part)} {openssh.quote(remote_path)}",
                        ],
                    )
                    return Transferred(remote_path, size, digest_future.result())
                openssh.run_batch(settings, [put])
                digest = digest_future.result()
        else:
            digest = sha256_file(local_path)
            fs.put_file(str(local_path), part, block_size=SFTP_BLOCK)
        if before_rename is not None and not before_rename():
            raise UploadWithdrawn(f"{remote_path}: not put in place")
        if fs.exists(remote_path):
            fs.rm(remote_path)
        fs.mv(part, remote_path)
    except BaseException:
        try:
            if fs.exists(part):
                fs.rm(part)
        finally:
            raise
    return Transferred(remote_path, size, digest)


def download(fs: AbstractFileSystem, remote_path: str, local_path: Path | str) -> Transferred:
    """Download a remote file to a local `.part` file, then rename it into place."""
    local = Path(local_path)
    local.parent.mkdir(parents=True, exist_ok=True)
    part = local.with_name(local.name + ".part")
    try:
        if (settings := _openssh_settings(fs, int(fs.size(remote_path)))) is not None:
            openssh.run_batch(settings, [f"get {openssh.quote(remote_path)} {openssh.quote(str(part))}"])
        else:
            fs.get_file(remote_path, str(part), block_size=SFTP_BLOCK)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(local)
    return Transferred(str(local), local.stat().st_size, sha256_file(local))


def file_name_part(text: str) -> str:
    """`text` (a DE key, say) made fit for a file name on the Enhanced FTP: each character it
    refuses, and each control character, becomes `_`."""
    return "".join("_" if c in NOT_IN_FILE_NAMES or ord(c) < 32 else c for c in text)


def _host_name(host: str) -> bool:
    """A bare host name or IP address: no scheme, path or port."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return not any(c in host for c in ":/@ ")


def _openssh_settings(fs: AbstractFileSystem, size: int) -> SftpSettings | None:
    """The settings to hand this transfer to OpenSSH with, or None to use asyncssh."""
    settings = getattr(fs, "settings", None)
    if settings is None or size < openssh.MIN_BYTES or openssh.available() is None:
        return None
    return settings if isinstance(settings, SftpSettings) else None


def list_files(fs: AbstractFileSystem, folder: str) -> list[RemoteFile]:
    """Files in a folder with size and modification time (for sensor cursors)."""
    files = []
    for entry in fs.ls(folder, detail=True):
        if entry.get("type") != "file":
            continue
        mtime = entry.get("mtime")
        when = mtime if isinstance(mtime, datetime) else datetime.fromtimestamp(float(mtime or 0), tz=UTC)
        files.append(
            RemoteFile(posixpath.join(folder, posixpath.basename(entry["name"])), int(entry["size"]), when)
        )
    return sorted(files, key=lambda f: f.path)
