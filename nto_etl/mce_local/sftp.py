"""The local Enhanced FTP: a real SSH/SFTP server (asyncssh) chrooted to the state directory.

Folders Import, Export and Reports; password and public-key login; at most ten
simultaneous connections, as MCE allows.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

log = logging.getLogger(__name__)

FOLDERS = ("Import", "Export", "Reports")
MAX_CONNECTIONS = 10
# "The names of files that you transfer to the SFTP server can't contain these characters:
# \ / : * < > | ? "" (SFTP Accounts in Marketing Cloud Engagement); / separates folders.
FORBIDDEN_IN_NAMES = frozenset(b'\\:*<>|?"')


class _Gate:
    def __init__(self) -> None:
        self.active = 0


@dataclass
class SftpFaults:
    """SFTP failures on demand, and MCE's lockout after repeated bad passwords."""

    drop_after_bytes: int | None = None  # drop the connection once an upload passes this many bytes
    drops_remaining: int = 0
    max_bad_passwords: int = 5
    lockout_seconds: float = 1800.0
    bad_passwords: int = 0
    locked_until: float = 0.0
    drops: int = 0
    lockouts: int = 0

    def locked(self) -> bool:
        return time.monotonic() < self.locked_until

    def unlock(self) -> None:
        self.bad_passwords, self.locked_until = 0, 0.0


class _FaultySftpServer(asyncssh.SFTPServer):
    """The SFTP session; drops the connection mid-upload when told to."""

    def __init__(self, chan: asyncssh.SSHServerChannel, chroot: bytes, faults: SftpFaults) -> None:
        super().__init__(chan, chroot=chroot)
        self._faults = faults
        self._written = 0

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        _check_name(path)
        return super().open(path, pflags, attrs)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        _check_name(newpath)
        super().rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        _check_name(newpath)
        super().posix_rename(oldpath, newpath)

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        _check_name(path)
        super().mkdir(path, attrs)

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        f = self._faults
        self._written += len(data)
        if f.drop_after_bytes is not None and f.drops_remaining > 0 and self._written > f.drop_after_bytes:
            f.drops_remaining -= 1
            f.drops += 1
            self.connection.abort()
            raise asyncssh.SFTPConnectionLost("injected: connection dropped mid-upload")
        return super().write(file_obj, offset, data)  # type: ignore[return-value]


def _check_name(path: bytes) -> None:
    name = path.rsplit(b"/", 1)[-1]
    if FORBIDDEN_IN_NAMES.intersection(name):
        raise asyncssh.SFTPInvalidFilename(
            f"file names can't contain \\ / : * < > | ? \": {name.decode('utf-8', 'replace')}"
        )


class _EnhancedFtpServer(asyncssh.SSHServer):
    def __init__(
        self, username: str, password: str, authorized_keys: Path | None, gate: _Gate, faults: SftpFaults
    ) -> None:
        self._faults = faults
        self._username = username
        self._password = password
        self._authorized_keys = authorized_keys
        self._gate = gate
        self._counted = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        if self._gate.active >= MAX_CONNECTIONS:
            conn.disconnect(
                asyncssh.DISC_TOO_MANY_CONNECTIONS, f"at most {MAX_CONNECTIONS} simultaneous connections"
            )
            return
        self._gate.active += 1
        self._counted = True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._gate.active -= 1
            self._counted = False

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is always required

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        f = self._faults
        if f.locked():
            return False  # locked out: even the right password is refused
        ok = secrets.compare_digest(username, self._username) and secrets.compare_digest(
            password, self._password
        )
        if ok:
            f.bad_passwords = 0
            return True
        f.bad_passwords += 1
        if f.bad_passwords >= f.max_bad_passwords:
            f.locked_until = time.monotonic() + f.lockout_seconds
            f.lockouts += 1
            log.warning(
                "SFTP account locked for %.0f s after %d bad passwords", f.lockout_seconds, f.bad_passwords
            )
        return False

    def public_key_auth_supported(self) -> bool:
        return self._authorized_keys is not None and self._authorized_keys.exists()

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if not secrets.compare_digest(username, self._username):
            return False
        keys = asyncssh.read_authorized_keys(str(self._authorized_keys))
        return keys.validate(key, "", "127.0.0.1") is not None


def host_key(state_dir: Path) -> asyncssh.SSHKey:
    """The server's host key, created once and kept so known_hosts stays valid across restarts."""
    path = state_dir / "ssh_host_ed25519_key"
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(path))
        path.chmod(0o600)
    return asyncssh.read_private_key(str(path))


async def start_sftp(
    root: Path,
    host: str,
    port: int,
    username: str,
    password: str,
    key: asyncssh.SSHKey,
    authorized_keys: Path | None = None,
    faults: SftpFaults | None = None,
) -> asyncssh.SSHAcceptor:
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    gate = _Gate()
    faults = faults if faults is not None else SftpFaults()
    return await asyncssh.create_server(
        lambda: _EnhancedFtpServer(username, password, authorized_keys, gate, faults),
        host,
        port,
        server_host_keys=[key],
        sftp_factory=functools.partial(_FaultySftpServer, chroot=str(root).encode(), faults=faults),
        allow_scp=False,
        login_timeout=60,
        keepalive_interval=0,
    )
