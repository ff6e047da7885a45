"""One staged partition into its data extension: exactly once, nothing erased, every count reported.

    ensure the DE -> delta of changed rows (their hashes held) -> ledger check -> atomic
    upload to /Import -> import definition -> ledger "starting" -> Perform start -> ledger
    "started" (task id) -> wait for ImportResultsSummary -> ledger closed + held hashes
    recorded (one transaction)

A run that died after "starting" looks the task up by its import definition (one per
content hash) before it would start another import, so a crash never imports twice.

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
from nto_etl.ledger import ImportLedger
from nto_etl.mce import imports
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceError
from nto_etl.schema_sync import ensure_data_extension
from nto_etl.sql import transaction

log = logging.getLogger(__name__)
IMPORT_FOLDER = "/Import"
# Opens the warehouse for one step and closes it after (dagster-duckdb's get_connection, say).
Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


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
) -> SyncOutcome:
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
        )
        rows_staged = delta.rows + delta.unchanged
        if delta.rows == 0:
            return SyncOutcome(export.de_key, "unchanged", schema, rows_staged, 0, 0)
        sha = transfer.sha256_file(delta.path)
        ledger = ImportLedger(con)
        entry = ledger.find(export.de_key, sha)
        if entry is not None and entry.status == "Completed":
            # Imported before, with rows MCE refused (else the hashes would say unchanged): never again.
            return SyncOutcome(
                export.de_key, "already_imported", schema, rows_staged, 0, 0, sha, entry.task_id
            )
        hold_delta(con, export.de_key, sha, ledger.in_flight(export.de_key))
    key = definition_key(export.de_key, sha)
    file_name = f"{transfer.file_name_part(export.de_key)}_{sha[:16]}.csv"

    task_id = entry.task_id if entry is not None and entry.open else None
    if entry is not None and entry.open and task_id is None:
        # Died between Perform and recording its task id. The Perform may still be in flight (a
        # timed-out request is not a cancelled one): look for its task until it can no longer appear.
        grace = in_flight_grace if in_flight_grace is not None else 2 * client.soap.settings.operation_timeout
        task_id = find_started_task(client, key)
        while task_id is None and (_utcnow() - entry.started_at).total_seconds() < grace:
            time.sleep(0.5)
            task_id = find_started_task(client, key)
    status = "recovered" if task_id else "imported"
    uploaded = 0
    if task_id is None:
        sent = transfer.upload_atomic(fs, delta.path, f"{IMPORT_FOLDER}/{file_name}")
        uploaded = sent.size
        spec_import = imports.ImportSpec(
            customer_key=key,
            destination_key=export.de_key,
            file_spec=file_name,
            name=f"{export.de_name} {sha[:8]}",
            update_type=export.update_type,
            allow_overwrite=export.allow_overwrite,
        )
        imports.ensure_import_definition(client, spec_import)
        with warehouse() as con:
            ImportLedger(con).begin(export.de_key, sha, partition_key, key, file_name, delta.rows)
        try:
            task_id = imports.start_import(client, key)
        except MceError as exc:
            if not exc.maybe_processed:
                with warehouse() as con:
                    ImportLedger(con).not_started(export.de_key, sha, str(exc))
            raise
        with warehouse() as con:
            ImportLedger(con).started(export.de_key, sha, task_id)
        log.info("import of %s rows into %s started as task %s", delta.rows, export.de_key, task_id)
    else:
        log.info("resuming import task %s into %s instead of starting another", task_id, export.de_key)
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
    return SyncOutcome(export.de_key, status, schema, rows_staged, delta.rows, uploaded, sha, task_id, result)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
