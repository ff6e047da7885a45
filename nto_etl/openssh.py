"""Large SFTP transfers through OpenSSH's `sftp` client, when it is installed.

asyncssh frames and encrypts each packet in Python on one core; OpenSSH does it in C and
moves a 100 MB file about three times faster (docs/PERFORMANCE.md). The same settings
apply: the same host, user and password or key, and the host key is checked against the
same known_hosts file unless checking is switched off. The password reaches `sftp` through
SSH_ASKPASS from the child's environment: never on a command line, never in a file.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from nto_etl.mce.errors import MceAuthenticationError, MceUnreachableError
from nto_etl.mce.settings import env_flag

if TYPE_CHECKING:
    from nto_etl.transfer import SftpSettings

# Below this size the connection set-up costs more than asyncssh's slower transfer.
MIN_BYTES = 8 * 1024 * 1024
ASKPASS_VARIABLE = "NTO_SFTP_ASKPASS_SECRET"
ASKPASS_SCRIPT = f'#!/bin/sh\nprintf "%s\\n" "${ASKPASS_VARIABLE}"\n'
TIMEOUT_SECONDS = 3600
ENABLE_VARIABLE = "NTO_SFTP_OPENSSH"  # "false" to always use asyncssh


def available() -> str | None:
    """The `sftp` binary, unless missing or switched off with NTO_SFTP_OPENSSH=false."""
    if not env_flag(os.environ, ENABLE_VARIABLE, True):
        return None
    return shutil.which("sftp")


def quote(path: str) -> str:
    """A path as sftp's batch language reads it: double-quoted, quotes and backslashes escaped."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_batch(settings: SftpSettings, commands: list[str]) -> None:
    """Run sftp batch commands; errors name the host and what failed, never the secret."""
    from nto_etl.transfer import CIPHERS

    binary = available()
    if binary is None:
        raise FileNotFoundError("the OpenSSH sftp client is not installed")
    where = f"{settings.username}@{settings.host}:{settings.port}"
    with tempfile.TemporaryDirectory(prefix="nto-sftp-") as tmp:
        batch = Path(tmp) / "batch"
        batch.write_text("\n".join(commands) + "\n", encoding="utf-8")
        options = [
            "-o", f"Ciphers={','.join(c for c in CIPHERS if c.endswith('@openssh.com') or c.endswith('-ctr'))}",
            "-o", "ConnectTimeout=30",
            "-o", "ServerAliveInterval=30",
            "-o", "NumberOfPasswordPrompts=1",
        ]  # fmt: skip
        if settings.check_host_key:
            known = settings.known_hosts or str(Path("~/.ssh/known_hosts").expanduser())
            options += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
        else:
            options += ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"]
        env = {k: v for k, v in os.environ.items() if k != ASKPASS_VARIABLE}
        if settings.key_file:
            options += ["-i", settings.key_file, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
        else:
            askpass = Path(tmp) / "askpass"
            askpass.write_text(ASKPASS_SCRIPT, encoding="utf-8")
            askpass.chmod(stat.S_IRWXU)
            # sftp -b asks ssh for BatchMode, which allows no password at all; ssh keeps the first
            # value it is given, so ours go before -b on the command line.
            options += [
                "-o", "BatchMode=no",
                "-o", "PreferredAuthentications=password,keyboard-interactive",
                "-o", "PubkeyAuthentication=no",
            ]  # fmt: skip
            env |= {
                "SSH_ASKPASS": str(askpass),
                "SSH_ASKPASS_REQUIRE": "force",
                "DISPLAY": env.get("DISPLAY", ":0"),
                ASKPASS_VARIABLE: settings.password.reveal(),
            }
        command = [
            binary,
            "-o",
            "LogLevel=ERROR",  # not -q, which hides why a connection failed
            *options,
            "-P",
            str(settings.port),
            "-b",
            str(batch),
        ]  # options before -b: see above
        command.append(f"{settings.username}@{settings.host}")
        try:
            done = subprocess.run(
                command,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise MceUnreachableError(
                f"sftp to {where} did not finish in {TIMEOUT_SECONDS} s", operation="sftp"
            ) from None
    if done.returncode == 0:
        return
    said = (done.stderr or done.stdout).strip().replace(settings.password.reveal() or "\0", "***")
    if "Host key verification failed" in said or "REMOTE HOST IDENTIFICATION HAS CHANGED" in said:
        raise MceAuthenticationError(
            f"SFTP host key of {settings.host}:{settings.port} is not the one in known_hosts "
            f"({settings.known_hosts or '~/.ssh/known_hosts'})",
            operation="sftp connect",
        )
    if "Permission denied" in said:
        raise MceAuthenticationError(f"SFTP login refused for {where}", operation="sftp connect")
    if "Connection refused" in said or "timed out" in said or "Could not resolve" in said:
        raise MceUnreachableError(
            f"cannot reach SFTP {where}: {said.splitlines()[-1]}", operation="sftp connect"
        )
    raise OSError(f"sftp to {where} failed: {said.splitlines()[-1] if said else f'exit {done.returncode}'}")
