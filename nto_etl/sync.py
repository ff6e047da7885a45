"""One staged partition into its data extension: exactly once, nothing erased, every count reported.

    ensure the DE -> delta of changed rows (their hashes held) -> ledger claim -> upload
    to /Import (a .part) -> import definition -> ledger "starting" -> rename into place ->
    Perform start -> ledger "started" (task id) -> wait for ImportResultsSummary -> ledger
    closed + held hashes recorded (one transaction)

The claim is taken in the same warehouse session as the ledger's look-up, so of two runs
syncing the same content (a sensor's run and the nightly schedule's, say) only one imports;
the other follows that import and records the same result. A run that died after
"starting" is found the same way: its task is looked up by its import definition (one per
content hash) before another import would start, so a crash never imports twice.

The warehouse (ledger, row hashes) is a single-writer DuckDB file: the sync opens it for
each of those steps and never while it uploads or waits for MCE, which can take minutes, so
the warehouse's other steps can write in between.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from fsspec import AbstractFileSystem

from nto_etl import transfer
from nto_etl.config import CrmExportConfig
from nto_etl.contracts import dataset_info
from nto_etl.de_specs import de_spec
from nto_etl.delta import drop_delta, hold_delta, prepare_delta, record_delta
from nto_etl.fingerprints import read_fingerprints
from nto_etl.ledger import ImportLedger, LedgerEntry
from nto_etl.mce import imports
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceError
from nto_etl.schema_sync import ensure_data_extension
from nto_etl.sql import transaction

log = logging.getLogger(__name__)
IMPORT_FOLDER = "/Import"
# How long a claim may go without reaching "starting" (the upload and the import definition)
# before another run takes the import over; a run that failed releases its claim at once.
CLAIM_LEASE_SECONDS = 900.0
POLL_SECONDS = 0.5
# Opens the warehouse for one step and closes it after (dagster-duckdb's get_connection, say).
Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


class PartialStagingError(ValueError):
    """A full refresh sends every row, and the staged file left out rows MCE already holds."""

    def __init__(self, staged: Path, skipped: int) -> None:
        super().__init__(
            f"a full refresh sends every row, but {staged.name} left out {skipped} rows MCE already "
            "holds; stage the day again with every row first"
        )
        self.skipped = skipped


@dataclass(frozen=True)
class SyncOutcome:
    de_key: str
    status: str  # imported | unchanged | already_imported | recovered
    schema: str
    rows_staged: int
    rows_uploaded: int
    bytes_uploaded: int
    content_sha256: str | None = None
    task_id: str | None = None
    result: imports.ImportResult | None = None


def definition_key(de_key: str, content_sha256: str) -> str:
    """One import definition per content: MCE's own record of whether it was started."""
    return f"{de_key[:19]}_{content_sha256[:16]}"


def find_started_task(client: MceClient, key: str) -> str | None:
    summaries = client.retrieve_all(
        "ImportResultsSummary",
        ["TaskResultID", "ImportDefinitionCustomerKey"],
        client.simple_filter("ImportDefinitionCustomerKey", "equals", key),
    )
    ids = sorted(int(s.TaskResultID) for s in summaries if s.TaskResultID is not None)
    return str(ids[-1]) if ids else None


def sync_partition(
    client: MceClient,
    fs: AbstractFileSystem,
    warehouse: Connect,
    export: CrmExportConfig,
    staged: Path,
    partition_key: str | None,
    work_dir: Path,
    *,
    full_refresh: bool = False,
    timeout: float = 3600.0,
    after_start: Callable[[str], None] | None = None,
    in_flight_grace: float | None = None,
    claim_lease: float = CLAIM_LEASE_SECONDS,
) -> SyncOutcome:
    fingerprinted = read_fingerprints(staged)
    if full_refresh and fingerprinted and fingerprinted.skipped:
        raise PartialStagingError(staged, fingerprinted.skipped)
    spec = de_spec(export.model, export.de_key, export.de_name)
    schema = ensure_data_extension(client, spec)
    work_dir.mkdir(parents=True, exist_ok=True)
    with warehouse() as con:
        delta = prepare_delta(
            con,
            export.de_key,
            staged,
            spec.fields,
            work_dir / f"{staged.stem}.delta.csv",
            modified_column=dataset_info(export.model).modified_column,
            full_refresh=full_refresh or not export.delta,
            fingerprints=fingerprinted.values if fingerprinted else None,
            partition_key=partition_key,
        )
        rows_staged = delta.rows + delta.unchanged
        if delta.rows == 0:
            return SyncOutcome(export.de_key, "unchanged", schema, rows_staged, 0, 0)
        sha = transfer.sha256_file(delta.path)
        # Named for its content, so another run's delta of this day never overwrites the file
        # this run uploads.
        delta_path = delta.path.replace(delta.path.with_name(f"{staged.stem}.{sha[:16]}.delta.csv"))
        key = definition_key(export.de_key, sha)
        file_name = f"{transfer.file_name_part(export.de_key)}_{sha[:16]}.csv"
        ledger = ImportLedger(con)
        entry = ledger.find(export.de_key, sha)
        if entry is not None and entry.status == "Completed":
            # Imported before, with rows MCE refused (else the hashes would say unchanged): never again.
            return SyncOutcome(
                export.de_key, "already_imported", schema, rows_staged, 0, 0, sha, entry.task_id
            )

        def claim(ledger: ImportLedger, seen: LedgerEntry | None) -> datetime | None:
            return ledger.claim(export.de_key, sha, partition_key, key, file_name, delta.rows, seen)

        claimed_at = claim(ledger, entry) if entry is None or not entry.open else None
        hold_delta(con, export.de_key, sha, ledger.in_flight(export.de_key), partition_key)

    # A run that died between Perform and recording its task id may have left the Perform in
    # flight (a timed-out request is not a cancelled one): its task is looked for this long.
    grace = in_flight_grace if in_flight_grace is not None else 2 * client.soap.settings.operation_timeout
    task_id: str | None = None
    uploaded = 0
    started_here = False
    while task_id is None:
        if claimed_at is None:
            task_id, claimed_at = _follow(
                client, warehouse, export.de_key, sha, key, claim, grace, claim_lease
            )
            continue
        started = _start_import(client, fs, warehouse, export, sha, key, file_name, delta_path, claimed_at)
        if started is None:
            # Another run found the claim silent and took the import over; the file it imports
            # from was left alone. Follow that import.
            log.warning("another run took over the import into %s; following it", export.de_key)
            claimed_at = None
            continue
        task_id, uploaded = started
        started_here = True
        log.info("import of %s rows into %s started as task %s", delta.rows, export.de_key, task_id)
    if not started_here:
        log.info("following import task %s into %s instead of starting another", task_id, export.de_key)
    if after_start is not None:
        after_start(task_id)
    result = imports.wait_for_import(client, task_id, timeout=timeout)

    with warehouse() as con, transaction(con):
        ImportLedger(con).finish(export.de_key, sha, result)
        if result.status == "Completed" and result.errors == 0:
            record_delta(con, export.de_key, sha)
        else:
            drop_delta(con, export.de_key, sha)
    imports.check_import(result, allow_errors=True)
    status = "imported" if started_here else "recovered"
    return SyncOutcome(export.de_key, status, schema, rows_staged, delta.rows, uploaded, sha, task_id, result)


def _start_import(
    client: MceClient,
    fs: AbstractFileSystem,
    warehouse: Connect,
    export: CrmExportConfig,
    sha: str,
    key: str,
    file_name: str,
    delta_path: Path,
    claimed_at: datetime,
) -> tuple[str, int] | None:
    """Upload, ensure the import definition, confirm the claim just before the file lands
    (`starting`), Perform and record the task id: (task id, bytes uploaded); None when the
    claim was taken over meanwhile."""
    confirmed: datetime | None = None

    def ready() -> bool:
        """Once the bytes are on the server: the import definition, then the claim confirmed.
        The definition comes first, so its retries count against no other run's grace."""
        nonlocal confirmed
        imports.ensure_import_definition(
            client,
            imports.ImportSpec(
                customer_key=key,
                destination_key=export.de_key,
                file_spec=file_name,
                name=f"{export.de_name} {sha[:8]}",
                update_type=export.update_type,
                allow_overwrite=export.allow_overwrite,
            ),
        )
        with warehouse() as con:
            confirmed = ImportLedger(con).confirm(export.de_key, sha, claimed_at)
        return confirmed is not None

    try:
        sent = transfer.upload_atomic(fs, delta_path, f"{IMPORT_FOLDER}/{file_name}", before_rename=ready)
    except transfer.UploadWithdrawn:
        return None
    except BaseException as exc:
        held = confirmed or claimed_at  # confirmed, if the rename itself failed
        _release(warehouse, export.de_key, sha, held, f"{type(exc).__name__}: {exc}")
        raise
    try:
        task_id = imports.start_import(client, key)
    except MceError as exc:
        if not exc.maybe_processed:
            with warehouse() as con:
                ImportLedger(con).not_started(export.de_key, sha, str(exc))
        raise
    with warehouse() as con:
        ImportLedger(con).started(export.de_key, sha, task_id)
    return task_id, sent.size


def _follow(
    client: MceClient,
    warehouse: Connect,
    de_key: str,
    sha: str,
    key: str,
    claim: Callable[[ImportLedger, LedgerEntry | None], datetime | None],
    grace: float,
    lease: float,
) -> tuple[str | None, datetime | None]:
    """Another run holds the content's import, or held it and died: its task, once the ledger
    or MCE shows it, or this run's claim, once that run is silent for longer than it may be
    (`lease` while it uploads, `grace` once its Perform may be in flight) or gave up."""
    while True:
        with warehouse() as con:
            entry = ImportLedger(con).find(de_key, sha)
        if entry is not None and entry.task_id and entry.status != "Error":
            return entry.task_id, None  # started, or Completed while this run looked
        if entry is not None and entry.status == "starting" and (task := find_started_task(client, key)):
            return task, None
        silent = (
            entry is None
            or not entry.open
            or (_utcnow() - entry.started_at).total_seconds()
            >= (lease if entry.status == "claimed" else grace)
        )
        if silent:
            with warehouse() as con:
                claimed_at = claim(ImportLedger(con), entry)
            if claimed_at is not None:
                return None, claimed_at
            continue
        time.sleep(POLL_SECONDS)


def _release(warehouse: Connect, de_key: str, sha: str, claimed_at: datetime, reason: str) -> None:
    """Release a claim whose upload failed, so the next run starts at once; if the warehouse
    cannot be reached now, the claim lapses after its lease instead."""
    try:
        with warehouse() as con:
            ImportLedger(con).release(de_key, sha, claimed_at, reason)
    except Exception:  # the upload's own error is the one to raise
        log.warning("could not release the claim on the import into %s; it lapses after its lease", de_key)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
