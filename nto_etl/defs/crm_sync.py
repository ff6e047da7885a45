"""CRM export -> validated CSV -> MCE data extension, one chain per entry of pipeline.yaml."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from nto_etl.config import CrmExportConfig, default_config
from nto_etl.defs.partitions import daily, mce_failures, network_retry
from nto_etl.defs.resources import MceResource, PipelineStorage, warehouse_connection
from nto_etl.delta import known_fingerprints
from nto_etl.export_scan import scan_export
from nto_etl.mce.errors import MceImportError
from nto_etl.retention import keep_days, remove_old_files
from nto_etl.secrets import shown_url
from nto_etl.staging import ExportFileError, StageResult, stage_export
from nto_etl.sync import PartialStagingError, sync_partition

REJECTS_CHECK = "rejects_within_threshold"
RECONCILE_CHECK = "import_reconciles"


class SyncConfig(dg.Config):
    full_refresh: bool = False
    """Upload every staged row, not only those changed since the last successful import. The
    rows MCE already holds were not staged: stage the day with `full_refresh` first."""


class StagingConfig(dg.Config):
    full_refresh: bool = False
    """Stage every row, those MCE already holds included (before the data extension's full refresh)."""


def export_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["crm", f"{dataset}_export"])


def staged_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["staging", dataset])


def de_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["mce", f"{dataset}_de"])


def staged_file(storage: PipelineStorage, dataset: str, partition: str) -> Path:
    """The day's staged file, for the steps that read it; when it is not there (never staged, or
    removed after NTO_KEEP_FILES_DAYS), a failure that says which asset to materialize."""
    staged = storage.staging_dir(dataset) / f"{dataset}_{partition}.csv"
    if not staged.exists():
        raise dg.Failure(
            description=f"{staged} is missing: materialize {staged_key(dataset).to_user_string()} for {partition} first"
        )
    return staged


def _failures_table(result: StageResult) -> dg.MetadataValue:
    lines = ["| column: check | rows |", "| --- | --- |"]
    lines += [f"| {name} | {count} |" for name, count in list(result.failures.items())[:20]]
    return dg.MetadataValue.md("\n".join(lines) if result.failures else "no rejects")


Locate = Callable[[PipelineStorage, str], str]  # (storage, partition) -> the export's URL


def export_asset(dataset: str, key: dg.AssetKey, locate: Locate, group: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=key,
        partitions_def=daily,
        group_name=group,
        kinds={"csv"},
        description=f"The day's {dataset} export file, found in its drop location, with its checksum.",
    )
    def _export(context: dg.AssetExecutionContext, storage: PipelineStorage) -> dg.MaterializeResult:
        url = locate(storage, context.partition_key)
        try:
            scan = scan_export(url, {})
        except FileNotFoundError:
            raise dg.Failure(
                description=f"no {dataset} export for {context.partition_key}: expected {shown_url(url)}"
            ) from None
        return dg.MaterializeResult(
            metadata={"url": shown_url(url), "sha256": scan.sha256, "bytes": scan.size}
        )

    return _export


def staged_asset(
    dataset: str,
    source: dg.AssetKey,
    key: dg.AssetKey,
    locate: Locate,
    max_share: float,
    group: str,
    skips_rows_of: str | None = None,
) -> dg.AssetsDefinition:
    """`skips_rows_of`: the data extension whose rows (those MCE holds, by their raw
    fingerprints) the staging skips, for a dataset imported by delta."""
    from nto_etl.contracts import MODELS

    model = MODELS[dataset]

    @dg.asset(
        key=key,
        deps=[source],
        partitions_def=daily,
        group_name=group,
        kinds={"pandera", "csv"},
        description=f"{dataset} validated against the {model.__name__} contract: the CSV MCE imports, and a rejects "
        "file naming each refused row's line, column, check and value."
        + (
            f" Rows MCE already holds in {skips_rows_of}, exactly as an earlier day staged them, are not staged again."
            if skips_rows_of
            else ""
        ),
        check_specs=[
            dg.AssetCheckSpec(
                REJECTS_CHECK,
                asset=key,
                blocking=True,
                description=f"At most {max_share:.0%} of the export's rows rejected.",
            )
        ],
    )
    def _staged(
        context: dg.AssetExecutionContext,
        config: StagingConfig,
        storage: PipelineStorage,
        warehouse: DuckDBResource,
    ) -> dg.MaterializeResult:
        url = locate(storage, context.partition_key)
        keep = keep_days()  # a bad setting stops the step before any work
        known = None
        if skips_rows_of is not None and not config.full_refresh:
            with warehouse_connection(warehouse) as con:
                known = known_fingerprints(con, skips_rows_of, context.partition_key)
        try:
            result = stage_export(
                url,
                model,
                storage.staging_dir(dataset),
                name=f"{dataset}_{context.partition_key}",
                known=known,
            )
        except ExportFileError as exc:
            raise dg.Failure(description=str(exc), metadata={"file": shown_url(url)}) from None
        old = remove_old_files(storage.staging_dir(dataset), keep)
        share = result.reject_share
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": result.rows_staged,
                "rows_read": result.rows_read,
                "rows_mce_holds": result.rows_known,
                "rows_rejected": result.rows_rejected,
                "duplicate_keys_resolved": result.duplicates_superseded,
                "validation_engine": result.engine,
                "rows_validated_by_pandera": result.rows_via_pandera,
                "staged_file": str(result.staged_path),
                "rejects_file": str(result.rejects_path),
                "source_sha256": result.source_sha256,
                "failures": _failures_table(result),
                "old_files_removed": len(old),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=REJECTS_CHECK,
                    passed=share <= max_share,
                    metadata={
                        "reject_share": round(share, 4),
                        "threshold": max_share,
                        "rows_rejected": result.rows_rejected,
                        "failing_checks": _failures_table(result),
                    },
                )
            ],
        )

    return _staged


def de_asset(export: CrmExportConfig) -> dg.AssetsDefinition:
    key = de_key(export.dataset)

    @dg.asset(
        key=key,
        deps=[staged_key(export.dataset)],
        partitions_def=daily,
        group_name="mce",
        kinds={"salesforce", "sftp"},
        pool="mce",
        retry_policy=network_retry,
        description=f"Data extension {export.de_key} ({export.de_name}): kept in step with the "
        f"{export.model.__name__} contract; the day's changed rows uploaded to /Import and imported "
        f"({export.update_type}), exactly once, recorded in the import ledger.",
        check_specs=[
            dg.AssetCheckSpec(
                RECONCILE_CHECK,
                asset=key,
                blocking=True,
                description="ImportResultsSummary counts match the rows uploaded.",
            )
        ],
    )
    def _de(
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        mce: MceResource,
        storage: PipelineStorage,
        warehouse: DuckDBResource,
    ) -> dg.MaterializeResult:
        keep = keep_days()  # a bad setting stops the step before any work
        staged = staged_file(storage, export.dataset, context.partition_key)
        with mce_failures(), mce.sftp() as fs:
            client = mce.client()
            try:
                outcome = sync_partition(
                    client,
                    fs,
                    lambda: warehouse_connection(warehouse),  # opened per step, not while MCE imports
                    export,
                    staged,
                    context.partition_key,
                    Path(storage.upload_dir(export.dataset)),
                    full_refresh=config.full_refresh,
                    timeout=mce.import_timeout,
                )
            except PartialStagingError as exc:
                raise dg.Failure(
                    description=f"{exc} (materialize {staged_key(export.dataset).to_user_string()} "
                    "with full_refresh: true)",
                    metadata={"rows_left_out": exc.skipped},
                ) from None
            except MceImportError as exc:
                f = exc.failure
                raise dg.Failure(
                    description=str(exc),
                    metadata={
                        "task_id": f.task_id,
                        "status": f.status,
                        "total_rows": f.total_rows,
                        "errors": f.errors,
                        "successful": f.successful,
                        "mce_code": exc.code or 0,
                    },
                ) from None
        message = {
            "unchanged": "nothing changed since the last successful import: no import",
            "already_imported": "this content was imported before: not imported again",
            "recovered": "finished recording an import a previous run had started",
            "imported": "imported",
        }[outcome.status]
        context.log.info(f"{export.de_key}: {message}")
        old = remove_old_files(Path(storage.upload_dir(export.dataset)), keep)
        result = outcome.result
        metadata: dict[str, object] = {
            "outcome": message,
            "schema": outcome.schema,
            "data_extension": export.de_key,
            "rows_staged": outcome.rows_staged,
            "rows_uploaded": outcome.rows_uploaded,
            "bytes_uploaded": outcome.bytes_uploaded,
            "dagster/row_count": outcome.rows_uploaded,
            "old_files_removed": len(old),
        }
        if result is not None:
            metadata.update(
                {
                    "task_id": result.task_id,
                    "import_status": result.status,
                    "total_rows": result.total_rows,
                    "successful": result.successful,
                    "errors": result.errors,
                    "duplicates": result.duplicates,
                }
            )
        reconciles = result is None or (result.total_rows == outcome.rows_uploaded and result.errors == 0)
        return dg.MaterializeResult(
            metadata=metadata,  # type: ignore[arg-type]
            check_results=[
                dg.AssetCheckResult(
                    check_name=RECONCILE_CHECK,
                    passed=reconciles,
                    metadata={
                        "rows_uploaded": outcome.rows_uploaded,
                        "mce_total_rows": result.total_rows if result else 0,
                        "mce_successful": result.successful if result else 0,
                        "mce_errors": result.errors if result else 0,
                    },
                )
            ],
        )

    return _de


def crm_chain(export: CrmExportConfig) -> list[dg.AssetsDefinition]:
    d = export.dataset

    def locate(storage: PipelineStorage, partition: str) -> str:
        return storage.export_url(d, partition)

    return [
        export_asset(d, export_key(d), locate, "crm"),
        staged_asset(
            d,
            export_key(d),
            staged_key(d),
            locate,
            export.max_reject_share,
            "staging",
            skips_rows_of=export.de_key if export.delta else None,
        ),
        de_asset(export),
    ]


def web_analytics_chain() -> list[dg.AssetsDefinition]:
    web = default_config().web_analytics
    source = dg.AssetKey(["web_analytics", "page_views_export"])

    def locate(storage: PipelineStorage, partition: str) -> str:
        return storage.web_analytics_file(web.file_prefix, partition)

    return [
        export_asset(web.dataset, source, locate, "web_analytics"),
        staged_asset(web.dataset, source, staged_key(web.dataset), locate, web.max_reject_share, "staging"),
    ]


@dg.definitions
def crm_sync_definitions() -> dg.Definitions:
    assets = [a for export in default_config().crm_exports for a in crm_chain(export)]
    return dg.Definitions(assets=[*assets, *web_analytics_chain()])
