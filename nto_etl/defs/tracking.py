"""Tracking data: a daily tracking extract moved to /Export, then merged into DuckDB (idempotent, with overlap)."""

import tempfile
from datetime import timedelta
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from nto_etl.defs.partitions import daily, mce_failures, network_retry
from nto_etl.defs.resources import MceResource, warehouse_connection
from nto_etl.mce import activities as act
from nto_etl.mce import tracking as trk
from nto_etl.sql import scalar
from nto_etl.warehouse.send_jobs import merge_send_jobs, send_jobs_file
from nto_etl.warehouse.tracking import extract_files, merge_event_files

EXTRACT = dg.AssetKey(["mce", "tracking_extract"])
FILE_TRANSFER_KEY = "NTO_Safehouse_To_Export"
OVERLAP_DAYS = 1


class TrackingMergeConfig(dg.Config):
    compare_again: bool = False
    """Compare every event of the extract with the warehouse's, even when the partition was last
    merged from these very files (which are then known to be there): after events were deleted
    by hand from another partition."""


def extract_name(partition: str) -> str:
    return f"tracking_{partition}.zip"


@dg.asset(
    key=EXTRACT,
    partitions_def=daily,
    group_name="tracking",
    kinds={"salesforce", "sftp"},
    pool="mce",
    retry_policy=network_retry,
    description="Tracking extract (sent, opens, clicks, bounces, unsubscribes, send jobs) for the day and the day before "
    "(late events), MCE server time (CST, no DST), moved from the Safehouse to /Export by a file transfer.",
)
def tracking_extract(context: dg.AssetExecutionContext, mce: MceResource) -> dg.MaterializeResult:
    start, end = trk.mce_day_bounds(context.partition_key, OVERLAP_DAYS)
    name = extract_name(context.partition_key)
    with mce_failures():
        client = mce.client()
        act.extract_tracking(client, start, end - timedelta(seconds=1), name)
        moved = act.start_file_transfer(client, FILE_TRANSFER_KEY)
    return dg.MaterializeResult(
        metadata={
            "file": f"/Export/{name}",
            "window_start_mce": str(start),
            "window_end_mce": str(end),
            "window_start_utc": str(trk.to_utc(start)),
            "file_transfer": moved.message,
        }
    )


@dg.asset(
    key=["warehouse", "tracking_events"],
    deps=[EXTRACT],
    partitions_def=daily,
    group_name="warehouse",
    kinds={"duckdb"},
    pool="duckdb",
    retry_policy=network_retry,
    description="Tracking events from the day's extract, validated (TrackingEvent contract) and merged on "
    "(send, subscriber, type, date, URL): re-reads and late events never duplicate; the same extract merged "
    "again is recognised by its files' SHA-256 and not read (merge_path: recorded). The extract's send jobs "
    "(each send's email name, subject and time) go to the send_jobs table.",
)
def tracking_events(
    context: dg.AssetExecutionContext,
    config: TrackingMergeConfig,
    mce: MceResource,
    warehouse: DuckDBResource,
) -> dg.MaterializeResult:
    with tempfile.TemporaryDirectory() as tmp:
        with mce_failures(), mce.sftp() as fs:
            downloaded = act.download_export(fs, extract_name(context.partition_key), Path(tmp))
        files = extract_files(Path(downloaded.path), Path(tmp) / "events")
        jobs = send_jobs_file(Path(downloaded.path), Path(tmp) / "send_jobs")
        with warehouse_connection(warehouse) as con:
            merged = merge_event_files(con, files, context.partition_key, compare_again=config.compare_again)
            sends = merge_send_jobs(con, jobs, context.partition_key) if jobs else 0
            total = scalar(con, "SELECT count(*) FROM tracking_events")
    return dg.MaterializeResult(
        metadata={
            "events_read": merged.read,
            "events_new": merged.new,
            "merge_path": merged.path,
            "send_jobs": sends,
            "dagster/row_count": total,
            "sha256": downloaded.sha256,
            **{f"read_{k}": v for k, v in merged.by_type.items()},
        }
    )
