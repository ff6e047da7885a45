"""Schedules, sensors and the code location, evaluated with Dagster's test contexts."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from nto_etl.config import ConfigError, load_config
from nto_etl.definitions import defs
from nto_etl.defs import automation
from nto_etl.defs.automation import (
    crm_daily_schedule,
    crm_drop_sensor,
    hourly_event_reminder_schedule,
    monthly_newsletter_schedule,
    web_analytics_sensor,
)
from nto_etl.defs.crm_sync import de_key
from nto_etl.defs.partitions import daily
from nto_etl.defs.resources import PipelineStorage
from nto_etl.defs.segments import region_setting
from nto_etl.defs.tracking import OVERLAP_DAYS
from nto_etl.mce import tracking as trk
from nto_etl.mce.errors import MceConfigurationError

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def test_the_code_location_loads() -> None:
    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    keys = {k.to_user_string() for k in definitions.resolve_all_asset_keys()}
    assert {
        "crm/contacts_export",
        "staging/contacts",
        "mce/contacts_de",
        "mce/tracking_extract",
        "warehouse/tracking_events",
        "warehouse/customer_360",
        "crm/updates_export",
        "mce/segment_not_opened",
        "mce/segment_region",
        "web_analytics/page_views_export",
    } <= keys
    assert definitions.resolve_asset_graph().get(de_key("contacts")).is_partitioned
    workspace = (Path(__file__).resolve().parents[1] / "workspace.yaml").read_text()
    assert "nto_etl.definitions" in workspace and "location_name: nto_etl" in workspace


def settled(path: Path, seconds_ago: float = 120) -> None:
    """Give `path` the modification time of a file written `seconds_ago` and left alone since."""
    when = time.time() - seconds_ago
    os.utime(path, (when, when))


def test_crm_drop_sensor_requests_each_new_or_changed_file_once(tmp_path: Path) -> None:
    drop = tmp_path / "crm"
    (drop / "contacts").mkdir(parents=True)
    first = drop / "contacts" / "contacts_2026-11-01.csv"
    first.write_bytes((SAMPLE / "crm" / "contacts" / "contacts_2026-11-01.csv").read_bytes())
    settled(first)
    storage = PipelineStorage(crm_drop_url=str(drop))
    result = crm_drop_sensor(dg.build_sensor_context(resources={"storage": storage}))
    assert [r.partition_key for r in result.run_requests] == ["2026-11-01"]
    assert de_key("contacts") in result.run_requests[0].asset_selection
    again = crm_drop_sensor(dg.build_sensor_context(cursor=result.cursor, resources={"storage": storage}))
    assert again.run_requests == []
    (drop / "contacts" / "contacts_2026-11-02.csv").write_text(first.read_text())
    settled(drop / "contacts" / "contacts_2026-11-02.csv")
    settled(first, 100)  # the 1st re-delivered
    later = crm_drop_sensor(dg.build_sensor_context(cursor=again.cursor, resources={"storage": storage}))
    assert sorted(r.partition_key for r in later.run_requests) == ["2026-11-01", "2026-11-02"]
    (drop / "contacts" / "notes.txt").write_text("not an export")
    assert (
        crm_drop_sensor(
            dg.build_sensor_context(cursor=later.cursor, resources={"storage": storage})
        ).run_requests
        == []
    )


def test_a_file_still_being_written_waits_until_it_has_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "crm" / "contacts"
    drop.mkdir(parents=True)
    export = drop / "contacts_2026-11-01.csv"
    export.write_text(HEADER_ONLY := "customer_id,subscriber_key\n")  # the CRM has only begun
    storage = PipelineStorage(crm_drop_url=str(tmp_path / "crm"))
    now = crm_drop_sensor(dg.build_sensor_context(resources={"storage": storage}))
    assert now.run_requests == []
    export.write_text(HEADER_ONLY + "C1,K1\n")
    settled(export, 61)
    later = crm_drop_sensor(dg.build_sensor_context(cursor=now.cursor, resources={"storage": storage}))
    assert [r.partition_key for r in later.run_requests] == ["2026-11-01"]
    monkeypatch.setenv("NTO_DROP_SETTLE_SECONDS", "0")  # for drops written whole (a rename into place)
    export.write_text(HEADER_ONLY + "C1,K1\nC2,K2\n")
    assert (
        len(
            crm_drop_sensor(
                dg.build_sensor_context(cursor=later.cursor, resources={"storage": storage})
            ).run_requests
        )
        == 1
    )
    monkeypatch.setenv("NTO_DROP_SETTLE_SECONDS", "a minute")
    with pytest.raises(MceConfigurationError, match="NTO_DROP_SETTLE_SECONDS must be a number of float type"):
        crm_drop_sensor(dg.build_sensor_context(cursor=later.cursor, resources={"storage": storage}))


def test_a_file_named_for_no_partition_yet_waits_and_the_other_files_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evaluated as the daemon does (run requests resolved against the definitions), where a
    run request for a partition that does not exist fails the whole evaluation."""
    drop = tmp_path / "crm" / "contacts"
    drop.mkdir(parents=True)
    today = datetime.now(UTC).date()
    tomorrow = today + timedelta(days=1)
    names = {
        "good": "contacts_2026-11-01.csv",
        "tomorrow": f"contacts_{tomorrow:%Y-%m-%d}.csv",  # a CRM ahead of UTC, after its midnight
        "no_date": "contacts_2026-11-31.csv",
        "too_early": "contacts_2025-06-01.csv",
    }
    for name in names.values():
        (drop / name).write_bytes((SAMPLE / "crm" / "contacts" / "contacts_2026-11-01.csv").read_bytes())
        settled(drop / name)
    storage = PipelineStorage(crm_drop_url=str(tmp_path / "crm"))
    context = dg.build_sensor_context(resources={"storage": storage}, definitions=defs())
    tick = crm_drop_sensor.evaluate_tick(context)
    assert [r.partition_key for r in tick.run_requests] == ["2026-11-01"]
    cursor = json.loads(tick.cursor or "{}")
    assert {Path(p).name for p in cursor} == {names["good"], names["no_date"], names["too_early"]}
    log = capsys.readouterr().err  # the sensor's log, as Dagster prints it
    assert f"{names['tomorrow']}: waiting for {tomorrow:%Y-%m-%d} to begin (UTC)" in log
    assert f"{names['no_date']}: ignored, 2026-11-31 is not a daily partition" in log
    assert f"{names['too_early']}: ignored, 2025-06-01 is not a daily partition" in log

    class Tomorrow(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Tomorrow:
            return cls.combine(tomorrow, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)

    monkeypatch.setattr(automation, "datetime", Tomorrow)
    later = crm_drop_sensor(dg.build_sensor_context(cursor=tick.cursor, resources={"storage": storage}))
    assert [r.partition_key for r in later.run_requests] == [f"{tomorrow:%Y-%m-%d}"]
    assert names["tomorrow"] in later.run_requests[0].run_key


def test_web_analytics_sensor(tmp_path: Path) -> None:
    drop = shutil.copytree(SAMPLE / "web_analytics" / "page_views", tmp_path / "page_views")
    for path in drop.iterdir():
        settled(path)
    storage = PipelineStorage(web_analytics_url=str(drop))
    result = web_analytics_sensor(dg.build_sensor_context(resources={"storage": storage}))
    assert sorted(r.partition_key for r in result.run_requests) == ["2026-11-01", "2026-11-02", "2026-11-03"]


def test_schedules() -> None:
    monthly = monthly_newsletter_schedule(
        dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 1, 6))
    )
    assert monthly.run_key == "newsletter-2026-12"
    assert monthly_newsletter_schedule.cron_schedule == "0 6 1 * *"
    definitions = defs()
    daily = definitions.resolve_schedule_def("crm_daily_sync_schedule")
    assert daily.job_name == "crm_daily_sync"
    assert daily.cron_schedule == "30 2 * * *"
    assert crm_daily_schedule.name == "crm_daily_sync_schedule"


def test_the_nightly_sync_takes_the_day_that_has_ended() -> None:
    """A day's export holds that day's changes (the sample's latest is 23:45 of its day), so the
    02:30 run must take the day before: evaluated as the daemon does, against the definitions."""
    definitions = defs()
    tick = definitions.resolve_schedule_def("crm_daily_sync_schedule").evaluate_tick(
        dg.build_schedule_context(
            scheduled_execution_time=datetime(2026, 11, 4, 2, 30, tzinfo=UTC),
            repository_def=definitions.get_repository_def(),
        )
    )
    assert [r.partition_key for r in tick.run_requests or []] == ["2026-11-03"]
    latest = duckdb.sql(
        "SELECT max(modified_at) FROM read_csv($path, all_varchar = true)",
        params={"path": str(SAMPLE / "crm" / "contacts" / "contacts_2026-11-03.csv")},
    ).fetchall()[0][0]
    assert latest.startswith("2026-11-03 2")  # the export the run reads was written after its day
    tracking = definitions.resolve_schedule_def("daily_tracking_schedule").evaluate_tick(
        dg.build_schedule_context(
            scheduled_execution_time=datetime(2026, 11, 4, 7, tzinfo=UTC),
            repository_def=definitions.get_repository_def(),
        )
    )
    assert [r.partition_key for r in tracking.run_requests or []] == ["2026-11-03"]
    _, end = trk.mce_day_bounds("2026-11-03", OVERLAP_DAYS)
    assert trk.to_utc(end) <= datetime(2026, 11, 4, 7)  # its MCE day had ended by then


def test_the_hourly_reminders_wait_for_the_days_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "crm" / "event_registrations"
    drop.mkdir(parents=True)
    storage = PipelineStorage(crm_drop_url=str(tmp_path / "crm"))

    def at(hour: int) -> dg.RunRequest | dg.SkipReason:
        return hourly_event_reminder_schedule(
            dg.build_schedule_context(
                scheduled_execution_time=datetime(2026, 11, 2, hour, tzinfo=UTC),
                resources={"storage": storage},
            )
        )

    assert isinstance(none := at(0), dg.SkipReason)
    assert "no event_registrations export for 2026-11-02 yet" in str(none.skip_message)
    export = drop / "event_registrations_2026-11-02.csv"
    shutil.copy(SAMPLE / "crm" / "event_registrations" / export.name, export)
    assert isinstance(writing := at(1), dg.SkipReason)  # just written: the CRM may not be done
    assert "was modified in the last 60 s" in str(writing.skip_message)
    settled(export)
    hourly = at(14)
    assert isinstance(hourly, dg.RunRequest)
    assert (hourly.partition_key, hourly.run_key) == ("2026-11-02", "events-2026-11-02T14")
    (drop / "event_registrations_2026-11-01.csv").write_text("")  # another day's file is not today's
    export.unlink()
    assert isinstance(at(15), dg.SkipReason)


def test_the_hourly_reminders_read_the_drop_the_definitions_configure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the code server evaluates a tick for the daemon: the storage resource comes from the
    definitions, and with it the drop named by NTO_CRM_DROP_URL, read when the tick runs."""
    drop = tmp_path / "crm" / "event_registrations"
    drop.mkdir(parents=True)
    monkeypatch.setenv("NTO_CRM_DROP_URL", str(tmp_path / "crm"))
    definitions = defs()
    repository = definitions.get_repository_def()
    schedule = definitions.resolve_schedule_def("hourly_event_reminder_schedule")
    resources = {
        k: v for k, v in repository.get_top_level_resources().items() if k in schedule.required_resource_keys
    }

    def tick(day: int) -> dg.ScheduleExecutionData:
        return schedule.evaluate_tick(
            dg.build_schedule_context(
                scheduled_execution_time=datetime(2026, 11, day, 9, tzinfo=UTC),
                repository_def=repository,
                resources=resources,
            )
        )

    export = drop / "event_registrations_2026-11-02.csv"
    shutil.copy(SAMPLE / "crm" / "event_registrations" / export.name, export)
    settled(export)
    assert [(r.partition_key, r.run_key) for r in tick(2).run_requests or []] == [
        ("2026-11-02", "events-2026-11-02T09")
    ]
    skipped = tick(3)
    assert not skipped.run_requests
    assert f"no event_registrations export for 2026-11-03 yet in {drop}" == skipped.skip_message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "crm_exports:\n  - {dataset: contacts, de_key: K, de_name: N, update_type: Overwrite, "
            'allow_overwrite: "false"}\n',
            r"crm_exports\[0\]: allow_overwrite must be bool, got 'false'",
        ),
        (
            'crm_exports:\n  - {dataset: contacts, de_key: K, de_name: N, max_reject_share: "5%"}\n',
            r"crm_exports\[0\]: max_reject_share must be int or float, got '5%'",
        ),
        (
            "crm_exports:\n  - {dataset: contacts, de_key: K, de_name: N, delta: 1}\n",
            "delta must be bool, got 1",
        ),
        ("crm_exports:\n  - {dataset: contacts, de_key: 12, de_name: N}\n", "de_key must be str, got 12"),
        ("crm_exports:\n  - contacts\n", r"crm_exports\[0\]: expected a mapping of settings, got 'contacts'"),
        (
            "crm_exports:\n  - {dataset: contacts, de_key: K}\n",
            "missing 1 required positional argument: 'de_name'",
        ),
        (
            "crm_exports:\n  - {dataset: contacts, de_key: K, de_name: N, shoe: 1}\n",
            "unexpected keyword argument 'shoe'",
        ),
        ("crm_exports: contacts\n", "expected crm_exports: a list of exports"),
        ("crm_exports: [\n", "not valid YAML"),
        (
            "crm_exports:\n  - {dataset: contacts, de_key: A, de_name: N}\n  - {dataset: contacts, de_key: B, de_name: M}\n",
            r"two crm_exports use the same dataset \(contacts\)",
        ),
        (
            "crm_exports:\n  - {dataset: contacts, de_key: A, de_name: N}\n  - {dataset: new_customers, de_key: a, de_name: M}\n",
            r"two crm_exports use the same de_key \(a\)",
        ),
        (
            "web_analytics: {dataset: page_views, file_prefix: page_views}\n",
            "web_analytics: unknown dataset 'page_views'",
        ),
        ("web_analytics: {max_reject_share: high}\n", "web_analytics: max_reject_share must be int or float"),
    ],
)
def test_config_names_what_is_wrong_and_where(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "pipeline.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(config)
    assert str(raised.value).startswith("pipeline.yaml: ")


def test_config_refuses_overwrite_unless_allowed(tmp_path: Path) -> None:
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "crm_exports:\n  - {dataset: contacts, de_key: K, de_name: N, update_type: Overwrite}\n"
    )
    with pytest.raises(ConfigError, match="Overwrite erases previously imported rows"):
        load_config(config)
    config.write_text(
        "crm_exports:\n  - {dataset: contacts, de_key: K, de_name: N, update_type: Overwrite, allow_overwrite: true}\n"
    )
    assert load_config(config).crm_exports[0].allow_overwrite
    config.write_text("crm_exports:\n  - {dataset: nope, de_key: K, de_name: N}\n")
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        load_config(config)


def test_the_region_setting_is_read_as_the_segment_spells_it() -> None:
    assert region_setting({}) == "OR"
    assert region_setting({"NTO_SEGMENT_REGION": " wa "}) == "WA"  # the key and description say WA


TABLES = ("email_engagement", "campaign_performance", "engagement_by_region", "customer_360")


def requested_after_a_nightly_sync(*, with_mce_rows: bool = True) -> dict[str, int]:
    """What the automation sensor requests once a night's sync loads yesterday's contacts, every
    earlier day and every table having been materialized before (today is missing, as at night)."""
    definitions = defs()
    instance = dg.DagsterInstance.ephemeral()
    first = datetime.strptime(str(daily.get_first_partition_key()), "%Y-%m-%d").date()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    days = [f"{first + timedelta(days=i):%Y-%m-%d}" for i in range((yesterday - first).days + 1)]

    def synced(keys: list[str], partitions: list[str | None]) -> None:
        for key in keys:
            for partition in partitions:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(dg.AssetKey.from_user_string(key), partition=partition)
                )

    synced([f"warehouse/{t}" for t in ("crm_contacts", "web_page_views", "tracking_events")], days)
    synced(["mce/contacts_de"], days)
    tables = [f"warehouse/{t}" for t in TABLES] + ["warehouse/mce_contact_rows", "crm/updates_export"]
    synced(tables if with_mce_rows else tables[:-2] + tables[-1:], [None])
    before = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    synced(["mce/contacts_de", "warehouse/crm_contacts"], [days[-1]])  # the nightly sync
    after = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=before.cursor)
    return {key: after.get_num_requested(dg.AssetKey.from_user_string(key)) for key in tables}


def test_the_analytics_follow_a_nightly_sync_while_today_is_still_missing() -> None:
    """The unpartitioned tables follow their daily inputs once the automation sensor is on. Today's
    partition is open (for the event reminders) and stays missing until the next night's sync, so a
    condition that waits for every day of its inputs would never fire."""
    assert requested_after_a_nightly_sync() == {
        "warehouse/email_engagement": 0,  # its input (tracking) did not change
        "warehouse/campaign_performance": 0,
        "warehouse/engagement_by_region": 1,
        "warehouse/customer_360": 1,
        "warehouse/mce_contact_rows": 1,  # MCE's rows read again after the sync into the DE
        "crm/updates_export": 1,  # after customer_360 and MCE's rows, in the same run
    }
    never_read = requested_after_a_nightly_sync(with_mce_rows=False)  # MCE's rows never read before
    assert (never_read["warehouse/mce_contact_rows"], never_read["crm/updates_export"]) == (1, 1)
