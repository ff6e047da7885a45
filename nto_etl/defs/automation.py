"""Schedules and sensors: the daily CRM sync, the monthly newsletter refresh, hourly event reminders, file drops."""

import json
import logging
import os
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from nto_etl.config import default_config
from nto_etl.defs.crm_sync import de_key, export_key, staged_key
from nto_etl.defs.partitions import daily
from nto_etl.defs.resources import MceResource, PipelineStorage
from nto_etl.defs.segments import AUDIENCE
from nto_etl.defs.tracking import EXTRACT
from nto_etl.drops import DroppedFile, list_dated_files, new_or_changed
from nto_etl.mce.settings import env_number
from nto_etl.secrets import shown_url


def chain(dataset: str) -> list[dg.AssetKey]:
    return [
        export_key(dataset),
        staged_key(dataset),
        de_key(dataset),
        dg.AssetKey(["warehouse", f"crm_{dataset}"]),
    ]


crm_daily_sync = dg.define_asset_job(
    "crm_daily_sync",
    selection=dg.AssetSelection.assets(*[k for e in default_config().crm_exports for k in chain(e.dataset)]),
    description="Every CRM export of a day: validated, imported into its data extension, loaded into DuckDB.",
)
event_reminder_sync = dg.define_asset_job(
    "event_reminder_sync",
    selection=dg.AssetSelection.assets(*chain("event_registrations")),
    description="Event registrations for transactional reminders (re-run during the day as sign-ups arrive).",
)
tracking_ingest = dg.define_asset_job(
    "tracking_ingest",
    selection=dg.AssetSelection.assets(EXTRACT, dg.AssetKey(["warehouse", "tracking_events"])),
)
newsletter_refresh = dg.define_asset_job(
    "newsletter_refresh",
    selection=dg.AssetSelection.assets(
        AUDIENCE, dg.AssetKey(["mce", "segment_not_opened"]), dg.AssetKey(["mce", "segment_region"])
    ),
    description="The monthly newsletter's audience and segments.",
)
web_analytics_ingest = dg.define_asset_job(
    "web_analytics_ingest",
    selection=dg.AssetSelection.assets(
        dg.AssetKey(["web_analytics", "page_views_export"]),
        staged_key("web_page_views"),
        dg.AssetKey(["warehouse", "web_page_views"]),
    ),
)


@dg.schedule(job=crm_daily_sync, cron_schedule="30 2 * * *", name="crm_daily_sync_schedule")
def crm_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """The day before's exports, at 02:30 UTC: a day's export holds that day's changes, so it is
    complete only once the day has ended. (Dagster's schedule from the partitioned job would
    take the latest partition, which, with today's partition open for the event reminders, is
    today's: an export the CRM has not written yet.)"""
    day = _day_before(context)
    return dg.RunRequest(run_key=f"crm-{day}", partition_key=day)


@dg.schedule(job=tracking_ingest, cron_schedule="0 7 * * *", name="daily_tracking_schedule")
def daily_tracking_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """The day before's tracking extract and merge, at 07:00 UTC: a tracking partition is a day in
    MCE time (CST, UTC-6), which ends at 06:00 UTC. Late events of that day come with the next
    day's extract, which overlaps it by a day."""
    day = _day_before(context)
    return dg.RunRequest(run_key=f"tracking-{day}", partition_key=day)


def _day_before(context: dg.ScheduleEvaluationContext) -> str:
    when = context.scheduled_execution_time or datetime.now(UTC)
    return f"{when - timedelta(days=1):%Y-%m-%d}"


@dg.schedule(job=newsletter_refresh, cron_schedule="0 6 1 * *", execution_timezone="America/Los_Angeles")
def monthly_newsletter_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """The newsletter segments, refreshed on the first of each month before the send."""
    month = (context.scheduled_execution_time or datetime.now()).strftime("%Y-%m")
    return dg.RunRequest(run_key=f"newsletter-{month}")


@dg.schedule(job=event_reminder_sync, cron_schedule="0 * * * *")
def hourly_event_reminder_schedule(
    context: dg.ScheduleEvaluationContext, storage: PipelineStorage
) -> dg.RunRequest | dg.SkipReason:
    """Today's event registrations, every hour: reminders go out the same day a sign-up arrives.

    The hour is skipped, with the reason, while the day's export is not there yet or was
    modified within NTO_DROP_SETTLE_SECONDS (the CRM may still be writing it): a failed run
    every night until the first export, or a half-written file staged, helps nobody.
    """
    when = context.scheduled_execution_time or datetime.now(UTC)
    day = f"{when:%Y-%m-%d}"
    export = default_config().export("event_registrations")
    folder = storage.export_url("event_registrations", day).rsplit("/", 1)[0]
    files = [f for f in list_dated_files(folder) if f.prefix == export.file_prefix and f.date == day]
    if not files:
        return dg.SkipReason(f"no event_registrations export for {day} yet in {shown_url(folder)}")
    settle = _settle_seconds()
    if files[0].mtime > time.time() - settle:
        return dg.SkipReason(f"{files[0].path} was modified in the last {settle:g} s: next hour")
    return dg.RunRequest(run_key=f"events-{when:%Y-%m-%dT%H}", partition_key=day)


def _settle_seconds() -> float:
    return env_number(os.environ, "NTO_DROP_SETTLE_SECONDS", "60", float, zero=True)


def _run_requests(
    files: list[DroppedFile],
    seen: dict[str, str],
    log: logging.Logger,
    asset_selection: list[dg.AssetKey] | None = None,
) -> tuple[list[dg.RunRequest], dict[str, str]]:
    """One run request per new or changed file whose day is a partition, and the updated cursor.

    Files modified within the last NTO_DROP_SETTLE_SECONDS (default 60) may still be being
    written: they wait for a later evaluation. So does a file named for a day that has not
    begun yet in UTC (a CRM ahead of UTC names its export for its own date): a run request
    for a partition that does not exist would fail the whole evaluation, every file with it.
    A name that is no partition at all (before the first day, or no calendar date) is logged
    once and left alone.
    """
    fresh, cursor = new_or_changed(files, seen, settled_before=time.time() - _settle_seconds())
    with dg.partition_loading_context(effective_dt=datetime.now(UTC)):
        last = daily.get_last_partition_key() or ""
        requests = []
        for f in fresh:
            if daily.has_partition_key(f.date):
                requests.append(
                    dg.RunRequest(
                        run_key=f"{f.path}:{f.fingerprint}",
                        partition_key=f.date,
                        asset_selection=asset_selection,
                    )
                )
            elif _calendar_date(f.date) and f.date > last:
                log.info(f"{f.path}: waiting for {f.date} to begin (UTC); the latest partition is {last}")
                _forget(cursor, seen, f.path)
            else:
                log.warning(
                    f"{f.path}: ignored, {f.date} is not a daily partition "
                    f"(the first is {daily.start:%Y-%m-%d}; the name must hold a calendar date)"
                )
    return requests, cursor


def _calendar_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _forget(cursor: dict[str, str], seen: dict[str, str], path: str) -> None:
    """Undo the cursor's note of `path`, so a later evaluation sees it again."""
    if path in seen:
        cursor[path] = seen[path]
    else:
        cursor.pop(path, None)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    asset_selection=dg.AssetSelection.assets(
        *[k for e in default_config().crm_exports for k in chain(e.dataset)]
    ),
)
def crm_drop_sensor(context: dg.SensorEvaluationContext, storage: PipelineStorage) -> dg.SensorResult:
    """A new or changed file in the CRM drop starts its dataset's chain for its day."""
    seen = json.loads(context.cursor) if context.cursor else {}
    requests = []
    for export in default_config().crm_exports:
        files = list_dated_files(f"{storage.crm_drop_url.rstrip('/')}/{export.dataset}")
        found, seen = _run_requests(
            [f for f in files if f.prefix == export.file_prefix], seen, context.log, chain(export.dataset)
        )
        requests += found
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen))


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    asset_selection=dg.AssetSelection.assets(
        staged_key("web_page_views"),
        dg.AssetKey(["web_analytics", "page_views_export"]),
        dg.AssetKey(["warehouse", "web_page_views"]),
    ),
)
def web_analytics_sensor(context: dg.SensorEvaluationContext, storage: PipelineStorage) -> dg.SensorResult:
    """A new day's web-analytics file starts its ingestion."""
    seen = json.loads(context.cursor) if context.cursor else {}
    files = [
        f
        for f in list_dated_files(storage.web_analytics_url)
        if f.prefix == default_config().web_analytics.file_prefix
    ]
    requests, seen = _run_requests(files, seen, context.log)
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen))


@dg.sensor(
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    asset_selection=dg.AssetSelection.assets(dg.AssetKey(["warehouse", "tracking_events"])),
)
def export_sensor(context: dg.SensorEvaluationContext, mce: MceResource) -> dg.SensorResult:
    """A new or changed tracking extract in the Enhanced FTP /Export starts its ingestion into DuckDB."""
    seen = json.loads(context.cursor) if context.cursor else {}
    with mce.sftp() as fs:
        files = [f for f in list_dated_files("/Export", fs=fs) if f.prefix == "tracking"]
    requests, seen = _run_requests(files, seen, context.log)
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen))
