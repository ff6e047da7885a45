"""Fault drills and a fault soak: the pipeline against a misbehaving local MCE, checked for lost and duplicate data.

A drill injects one fault, runs a day of the CRM chain, and (if the run stopped) removes
the fault and runs again, as an engineer would. Then it checks what must always hold:
the data extension holds exactly the rows a fault-free run gives it, each content was
imported at most once, MCE's imports and the ledger agree, and no partial file sits in
/Import under its final name. The soak does the same over many days with random faults
at a seeded rate, against a fault-free run of the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import asyncssh
import dagster as dg

from nto_etl.config import default_config
from nto_etl.connections import local_settings
from nto_etl.defs.crm_sync import de_key, export_key, staged_key
from nto_etl.generate import generate
from nto_etl.harness import LocalPipeline
from nto_etl.mce import data_extensions as dex
from nto_etl.mce_local import LocalMce
from nto_etl.mce_local.faults import InjectedFault

CONTACTS = default_config().export("contacts")


def chain(dataset: str = "contacts") -> dg.AssetSelection:
    return dg.AssetSelection.assets(export_key(dataset), staged_key(dataset), de_key(dataset))


def all_chains() -> dg.AssetSelection:
    keys = [
        k
        for e in default_config().crm_exports
        for k in (export_key(e.dataset), staged_key(e.dataset), de_key(e.dataset))
    ]
    return dg.AssetSelection.assets(*keys) | dg.AssetSelection.assets(
        *[dg.AssetKey(["warehouse", f"crm_{e.dataset}"]) for e in default_config().crm_exports]
    )


@dataclass
class Drill:
    name: str
    arm: Callable[[LocalMce], object]
    disarm: Callable[[LocalMce], object] = lambda mce: None
    options: dict[str, float] = field(default_factory=dict)  # MceResource options (timeouts)


@dataclass
class Outcome:
    name: str
    first_run: str  # "completed" or the error that stopped it
    runs: int
    faults_injected: int
    rows_checked: int
    rows_lost: int
    duplicate_imports: int
    ledger_matches_mce: bool
    partial_files: int

    @property
    def ok(self) -> bool:
        return (
            self.rows_lost == 0
            and self.duplicate_imports == 0
            and self.ledger_matches_mce
            and self.partial_files == 0
        )


def _fill_sftp(mce: LocalMce) -> object:
    """Ten idle SSH connections: MCE's limit, so the pipeline's is the eleventh."""
    loop = asyncio.new_event_loop()
    info = mce.info

    async def connect() -> list[asyncssh.SSHClientConnection]:
        return [
            await asyncssh.connect(
                info.sftp_host,
                port=info.sftp_port,
                username=info.sftp_username,
                password=info.sftp_password,
                known_hosts=info.sftp_known_hosts,
            )
            for _ in range(10)
        ]

    connections = loop.run_until_complete(connect())
    mce._drill_connections = (loop, connections)  # type: ignore[attr-defined]
    return connections


def _free_sftp(mce: LocalMce) -> None:
    loop, connections = mce._drill_connections  # type: ignore[attr-defined]

    async def close_all() -> None:
        for c in connections:
            c.close()
            await c.wait_closed()

    loop.run_until_complete(close_all())
    loop.close()
    time.sleep(0.2)


def _lock_out(mce: LocalMce) -> None:
    """Five bad passwords, as a misconfigured job would send: MCE locks the account for 30 minutes."""
    from dataclasses import replace

    from nto_etl import transfer
    from nto_etl.mce.errors import MceAuthenticationError
    from nto_etl.secrets import Secret

    _, sftp = local_settings(mce.info)
    for _ in range(mce.sftp_faults.max_bad_passwords):
        with contextlib.suppress(MceAuthenticationError):
            transfer.open_sftp(replace(sftp, password=Secret("wrong")))
    assert mce.sftp_faults.locked()


def _set(obj_of: Callable[[LocalMce], object], **values: object) -> Callable[[LocalMce], None]:
    def apply(mce: LocalMce) -> None:
        for name, value in values.items():
            setattr(obj_of(mce), name, value)

    return apply


DRILLS = [
    Drill(
        "SOAP fault 17 (throttled) on Retrieve, 3 times",
        lambda m: m.service.inject(InjectedFault("Retrieve", remaining=3)),
    ),
    Drill(
        "HTTP 500 without a fault on Create",
        lambda m: m.service.inject(InjectedFault("Create", api_code=None)),
    ),
    Drill(
        "HTTP 503 on Perform",
        lambda m: m.service.inject(InjectedFault("Perform", api_code=None, http_status=503)),
    ),
    Drill(
        "SOAP fault 2 (unexpected) on Retrieve",
        lambda m: m.service.inject(InjectedFault("Retrieve", api_code=2, message="Unexpected error")),
    ),
    Drill(
        "MCE in maintenance (fault 9) on every call, twice",
        lambda m: m.service.inject(InjectedFault("*", api_code=9, message="In maintenance", remaining=2)),
    ),
    Drill(
        "Perform answered after the client's timeout (the import ran)",
        lambda m: m.service.inject(InjectedFault("Perform", fail=False, delay_seconds=2.5)),
        options={"operation_timeout": 1.5},
    ),
    Drill(
        "connection reset after Perform did the work",
        lambda m: m.service.inject(InjectedFault("Perform", reset=True, after=True)),
    ),
    Drill("connection reset on Retrieve", lambda m: m.service.inject(InjectedFault("Retrieve", reset=True))),
    Drill(
        "token expired mid-run",
        lambda m: m.service.inject(InjectedFault("Retrieve", fail=False, expire_tokens=True, nth=2)),
    ),
    Drill(
        "SFTP connection dropped mid-upload",
        _set(lambda m: m.sftp_faults, drop_after_bytes=2000, drops_remaining=1),
    ),
    Drill(
        "SFTP login locked out after bad passwords",
        _set(lambda m: m.sftp_faults, locked_until=time.monotonic() + 1800),
        disarm=lambda m: m.sftp_faults.unlock(),
    ),
    Drill("more than 10 simultaneous SFTP connections", _fill_sftp, disarm=_free_sftp),
    Drill(
        "import stuck in Processing",
        _set(lambda m: m.imports, stuck=1),
        disarm=lambda m: m.imports.release_stuck(),
        options={"import_timeout": 3},
    ),
    Drill("import completed with refused rows", _set(lambda m: m.imports, refuse_rows=2)),
]


def _check(
    p: LocalPipeline,
    expected: dict[str, dict[str, str | None]],
    faults: int,
    runs: int,
    first: str,
    name: str,
    refused: int = 0,
) -> Outcome:
    mce_rows = {
        r["subscriber_key"]: r
        for page in dex.retrieve_rows(
            p.client, CONTACTS.de_key, ["subscriber_key", "email", "first_name", "modified_at"]
        )
        for r in page.to_dict("records")
    }
    lost = sum(1 for k, row in expected.items() if mce_rows.get(k) != row) - refused
    ledger = p.sql("SELECT content_sha256, task_id, status FROM import_ledger")
    tasks = {str(s["TaskResultID"]) for s in p.mce.store.find("ImportResultsSummary")}
    contents = [c for c, _, _ in ledger]
    import_root = Path(p.mce.info.state_dir) / "ftp" / "Import"
    partial = 0
    for path in import_root.iterdir():
        if path.suffix == ".csv":  # a final name: its bytes must be what the ledger says was uploaded
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            partial += int(
                not any(path.name == f"{CONTACTS.de_key}_{c[:16]}.csv" and digest == c for c in contents)
            )
    return Outcome(
        name=name,
        first_run=first,
        runs=runs,
        faults_injected=faults,
        rows_checked=len(expected),
        rows_lost=max(0, lost),
        duplicate_imports=len(tasks) - len(set(t for _, t, _ in ledger if t)),
        ledger_matches_mce={t for _, t, _ in ledger if t} == tasks,
        partial_files=partial,
    )


def _first_line(event: dg.DagsterEvent) -> str:
    error = getattr(event.event_specific_data, "error", None)
    return str(getattr(error, "message", event.message) or "").strip().splitlines()[0][:160]


def _expected(root: Path, drop: Path, days: list[str]) -> dict[str, dict[str, str | None]]:
    with LocalMce(root / "baseline-mce") as mce:
        p = LocalPipeline(root / "baseline", mce, drop)
        for day in days:
            if not p.run(chain(), day).success:
                raise RuntimeError(f"the fault-free baseline failed on {day}")
        return {
            r["subscriber_key"]: r
            for page in dex.retrieve_rows(
                p.client, CONTACTS.de_key, ["subscriber_key", "email", "first_name", "modified_at"]
            )
            for r in page.to_dict("records")
        }


def run_drills(work: Path, drop: Path, days: list[str], drills: list[Drill] = DRILLS) -> list[Outcome]:
    expected = _expected(work, drop, days)
    outcomes = []
    for i, drill in enumerate(drills):
        with LocalMce(work / f"drill{i}-mce") as mce:
            p = LocalPipeline(work / f"drill{i}", mce, drop, **drill.options)  # type: ignore[arg-type]
            assert p.run(chain(), days[0]).success  # a first day, imported cleanly
            drill.arm(mce)
            result = p.run(chain(), days[1])
            failures = result.get_step_failure_events()
            first = (
                "completed"
                if result.success and not failures
                else (_first_line(failures[0]) if failures else "stopped by a blocking check")
            )
            runs = 1
            drill.disarm(mce)
            mce.service.faults.clear()
            while not result.success and runs < 3:
                result = p.run(chain(), days[1])
                runs += 1
            for day in days[2:]:
                p.run(chain(), day)
                runs += 1
            injected = (
                sum(mce.service.faults.injected.values()) + mce.sftp_faults.drops + mce.sftp_faults.lockouts
            )
            refused = 2 if "refused rows" in drill.name else 0
            outcomes.append(_check(p, expected, max(injected, 1), runs, first, drill.name, refused))
    return outcomes


@dataclass
class SoakResult:
    days: int
    runs: int
    faults_injected: dict[str, int]
    rows_checked: int
    rows_lost: int
    duplicate_imports: int
    ledgers_equal: bool
    tables_equal: bool


def run_soak(work: Path, *, rows: int = 2000, days: int = 6, rate: float = 0.08, seed: int = 7) -> SoakResult:
    """Many partitions, random faults at a seeded rate; the result must equal a fault-free run's."""
    drop = work / "drop"
    generate(rows, seed, drop, date(2026, 11, 1), days)
    partitions = [date(2026, 11, 1 + d).isoformat() for d in range(days)]
    crm = drop / "crm"

    def state(p: LocalPipeline) -> tuple[dict[str, list[tuple]], dict[str, list[tuple]], list[tuple]]:
        des = {
            e.de_key: sorted(
                map(
                    tuple,
                    (
                        r.values()
                        for page in dex.retrieve_rows(p.client, e.de_key, [f.name for f in dex_fields(e)])
                        for r in page.to_dict("records")
                    ),
                )
            )
            for e in default_config().crm_exports
        }
        tables = {
            e.dataset: sorted(p.sql(f"SELECT * FROM crm_{e.dataset}")) for e in default_config().crm_exports
        }
        ledger = sorted(
            p.sql("SELECT de_key, content_sha256, row_count, status, successful FROM import_ledger")
        )
        return des, tables, ledger

    with LocalMce(work / "clean-mce") as mce:
        clean = LocalPipeline(work / "clean", mce, crm)
        # Some generated days fail a blocking reject check by design (a small file with a bad row):
        # the faulty run must end the same way, failing nothing else.
        expected_failures = {day: _failed_steps(clean.run(all_chains(), day)) for day in partitions}
        clean_des, clean_tables, clean_ledger = state(clean)

    runs = 0
    with LocalMce(work / "faulty-mce") as mce:
        faulty = LocalPipeline(work / "faulty", mce, crm, operation_timeout=1.5, import_timeout=20)
        mce.service.faults.reseed(seed)
        for fault in (
            InjectedFault("*", api_code=17, remaining=10**6, rate=rate),
            InjectedFault("*", api_code=None, http_status=500, remaining=10**6, rate=rate / 2),
            InjectedFault("Perform", reset=True, after=True, remaining=10**6, rate=rate),
            InjectedFault("Create", api_code=None, http_status=503, remaining=10**6, rate=rate),
            InjectedFault("Retrieve", fail=False, expire_tokens=True, remaining=10**6, rate=rate / 2),
            InjectedFault("Perform", fail=False, delay_seconds=2.0, remaining=10**6, rate=rate / 2),
        ):
            mce.service.inject(fault)
        mce.sftp_faults.drop_after_bytes, mce.sftp_faults.drops_remaining = 5000, days
        for day in partitions:
            for _ in range(12):
                runs += 1
                if _failed_steps(faulty.run(all_chains(), day)) <= expected_failures[day]:
                    break
            else:
                raise RuntimeError(f"{day} did not complete in 12 runs")
        injected = dict(mce.service.faults.injected)
        injected["SFTP: connection dropped mid-upload"] = mce.sftp_faults.drops
        mce.service.faults.clear()
        faulty_des, faulty_tables, faulty_ledger = state(faulty)
        tasks = len(mce.store.find("ImportResultsSummary"))

    rows_checked = sum(len(v) for v in clean_des.values())
    lost = sum(len(set(clean_des[k]) - set(faulty_des.get(k, []))) for k in clean_des)
    return SoakResult(
        days=days,
        runs=runs,
        faults_injected=injected,
        rows_checked=rows_checked,
        rows_lost=lost,
        duplicate_imports=tasks - len(faulty_ledger),
        ledgers_equal=clean_ledger == faulty_ledger,
        tables_equal=clean_tables == faulty_tables,
    )


def _failed_steps(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key for e in result.get_step_failure_events() if e.step_key}


def dex_fields(export: object) -> tuple:
    from nto_etl.contracts import de_fields

    return de_fields(export.model)  # type: ignore[attr-defined]


def sample_days(drop: Path) -> list[str]:
    return sorted(p.stem.rsplit("_", 1)[1] for p in (drop / "contacts").glob("contacts_*.csv"))


def temporary_work() -> Path:
    return Path(tempfile.mkdtemp(prefix="nto-drills-"))


__all__ = ["DRILLS", "Drill", "Outcome", "SoakResult", "local_settings", "run_drills", "run_soak"]
