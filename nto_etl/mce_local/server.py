"""Start and stop the whole local MCE (HTTP + SFTP) on loopback, in a background event loop.

with LocalMce() as mce:          # free ports, temporary state
    info = mce.info             # everything a client needs
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from nto_etl.mce_local.activities import Activities
from nto_etl.mce_local.codec import SoapCodec
from nto_etl.mce_local.dataext import DataExtensions
from nto_etl.mce_local.http_app import build_app
from nto_etl.mce_local.imports import Imports
from nto_etl.mce_local.service import MceService
from nto_etl.mce_local.sftp import SftpFaults, host_key, start_sftp
from nto_etl.mce_local.store import Store
from nto_etl.mce_local.tokens import TOKEN_LIFETIME, Credentials, TokenIssuer
from nto_etl.mce_local.tracking import Tracking


@dataclass(frozen=True)
class LocalMceInfo:
    """Everything a client needs to reach the local MCE (printed as one JSON line by the CLI)."""

    auth_url: str
    soap_url: str
    wsdl_url: str
    client_id: str
    client_secret: str
    account_id: str
    username: str
    password: str
    sftp_host: str
    sftp_port: int
    sftp_username: str
    sftp_password: str
    sftp_known_hosts: str
    state_dir: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class LocalMce:
    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        host: str = "127.0.0.1",
        http_port: int = 0,
        sftp_port: int = 0,
        token_lifetime: float = TOKEN_LIFETIME,
        file_transfers: dict[str, str] | None = None,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the local MCE listens on loopback only, not {host}")
        self._temporary = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="mce-local-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self._ports = (http_port, sftp_port)
        self.credentials = self._credentials()
        self.issuer = TokenIssuer(self.credentials, lifetime=token_lifetime)
        self.store = Store(self.state_dir / "mce.duckdb")
        self.ftp_root = self.state_dir / "ftp"
        self.data_extensions = DataExtensions(self.store)
        self.imports = Imports(self.store, self.data_extensions, self.ftp_root)
        self.sftp_faults = SftpFaults()
        codec = SoapCodec()
        self.tracking = Tracking(self.store, self.data_extensions)
        self.activities = Activities(
            self.store,
            self.data_extensions,
            self.tracking,
            self.ftp_root,
            self.state_dir / "safehouse",
            codec.types,
            file_transfers,
        )
        self.service = MceService(
            self.store,
            self.data_extensions,
            self.imports,
            self.issuer,
            self._login_url,
            codec,
            self.activities,
            self.tracking,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._sftp: Any = None
        self._base_url = ""
        self.info: LocalMceInfo

    def _credentials(self) -> Credentials:
        path = self.state_dir / "credentials.json"
        if path.exists():
            return Credentials(**json.loads(path.read_text()))
        credentials = Credentials.generate()
        path.write_text(json.dumps(asdict(credentials)))
        path.chmod(0o600)
        return credentials

    def send(
        self, de_key: str, *, sent_at: datetime, seed: int = 1, subject: str = "", name: str = "(local send)"
    ) -> tuple[int, int]:
        """Simulate a send to a sendable DE at `sent_at` (MCE time); returns (send id, recipients)."""
        de = self.data_extensions.get(de_key)
        if de is None:
            raise ValueError(f"data extension {de_key} does not exist")
        return self.tracking.send(de, definition_key=name, subject=subject, sent_at=sent_at, seed=seed)

    def sends_named(self, name: str) -> list[int]:
        """Send ids of the simulated sends made under `name`."""
        with self.store.connection() as con:
            rows = con.execute("SELECT send_id FROM sends WHERE definition_key = ?", [name]).fetchall()
        return [int(r[0]) for r in rows]

    def _login_url(self) -> str:
        return self._base_url + "/Integration/ILogin.aspx"

    def start(self) -> LocalMceInfo:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="mce-local", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        if failure:
            raise RuntimeError(f"the local MCE did not start: {failure[0]}") from failure[0]
        return self.info

    async def _serve(self) -> None:
        http_port, sftp_port = self._ports
        self._runner = web.AppRunner(
            build_app(self.service, self.issuer, lambda: self._base_url), access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, http_port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._base_url = f"http://{self.host}:{port}"
        key = host_key(self.state_dir)
        c = self.credentials
        self._sftp = await start_sftp(
            self.ftp_root,
            self.host,
            sftp_port,
            c.sftp_username,
            c.sftp_password,
            key,
            self.state_dir / "authorized_keys",
            self.sftp_faults,
        )
        sftp_port = self._sftp.sockets[0].getsockname()[1]
        known_hosts = self.state_dir / "known_hosts"
        host_entry = self.host if sftp_port == 22 else f"[{self.host}]:{sftp_port}"
        known_hosts.write_text(f"{host_entry} {key.export_public_key().decode().strip()}\n")
        self.info = LocalMceInfo(
            auth_url=self._base_url,
            soap_url=self._base_url + "/Service.asmx",
            wsdl_url=self._base_url + "/etframework.wsdl",
            client_id=c.client_id,
            client_secret=c.client_secret,
            account_id=c.account_id,
            username=c.username,
            password=c.password,
            sftp_host=self.host,
            sftp_port=sftp_port,
            sftp_username=c.sftp_username,
            sftp_password=c.sftp_password,
            sftp_known_hosts=str(known_hosts),
            state_dir=str(self.state_dir),
        )

    async def _shutdown(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            await self._sftp.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        self.imports.close()
        self.store.close()
        if self._temporary:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> LocalMce:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
