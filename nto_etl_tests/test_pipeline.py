"""The Dagster asset graph end to end against the local MCE: contents, idempotency, crash recovery, checks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import pandera.pandas as pa
import pytest

from nto_etl import segments, transfer
from nto_etl.config import default_config
from nto_etl.connections import local_settings
from nto_etl.contracts import Contact
from nto_etl.defs.crm_sync import RECONCILE_CHECK, REJECTS_CHECK, de_key, export_key, staged_key
from nto_etl.defs.segments import AUDIENCE
from nto_etl.defs.tracking import EXTRACT
from nto_etl.harness import LocalPipeline
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import tracking as trk
from nto_etl.mce_local import LocalMce
from nto_etl.mce_local.clock import reading
from nto_etl.mce_local.faults import InjectedFault
from nto_etl.sync import SyncOutcome, sync_partition
from nto_etl_tests.helpers import CONTACTS_HEADER, all_rows, contact, kept_open, one_writer_at_a_time

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
REFRESHED_AT = datetime(2026, 11, 5, 6)  # MCE time
CONTACTS = default_config().export("contacts")


class Pipeline(LocalPipeline):
    def __init__(self, root: Path, mce: LocalMce, drop: Path = SAMPLE / "crm") -> None:
        super().__init__(root, mce, drop, SAMPLE / "web_analytics" / "page_views")


CRM = dg.AssetSelection.groups(
    "crm", "staging", "mce", "warehouse", "web_analytics"
) - dg.AssetSelection.assets(
    EXTRACT,
    dg.AssetKey(["warehouse", "tracking_events"]),
    dg.AssetKey(["warehouse", "mce_contact_rows"]),
    dg.AssetKey(["crm", "updates_export"]),
)
TRACKING = dg.AssetSelection.assets(EXTRACT, dg.AssetKey(["warehouse", "tracking_events"]))
LATER = dg.AssetSelection.groups("segments", "analytics", "crm_updates") | dg.AssetSelection.assets(
    dg.AssetKey(["warehouse", "mce_contact_rows"])
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    root = tmp_path_factory.mktemp("pipeline")
    with LocalMce(root / "mce") as mce:
        p = Pipeline(root, mce)
        for day in DAYS:
            assert p.run(CRM, day).success, day
        assert p.run(dg.AssetSelection.assets(AUDIENCE)).success
        mce.send(
            segments.NEWSLETTER_AUDIENCE.de_key,
            sent_at=datetime(2026, 11, 1, 10),
            seed=3,
            subject="November trails",
            name="test newsletter",
        )
        for day in DAYS:
            assert p.run(TRACKING, day).success, day
        # The segments read MCE's clock (the not-opened window): refreshed as on the 5th, not
        # on whatever day the tests run.
        with reading(REFRESHED_AT):
            later = p.run(LATER)
        assert later.success
        checked = {e.asset_check_key.name: e.passed for e in later.get_asset_check_evaluations()}
        assert checked == {  # the analytics tables' rules, on a real send's tracking data
            "one_row_per_subscriber": True,
            "rates_are_shares": True,
            "sends_are_named": True,
            "one_row_per_state": True,
            "one_row_per_contact": True,
        }
        yield p


def expected_contacts() -> pd.DataFrame:
    """Independently of staging: every raw export, rows the contract accepts, the latest per key."""
    frames = []
    for day in DAYS:
        raw = pd.read_csv(
            SAMPLE / "crm" / "contacts" / f"contacts_{day}.csv", dtype=str, keep_default_na=False
        )
        raw = raw.replace("", None)
        try:
            Contact.validate(raw, lazy=True)
            frames.append(raw)
        except pa.errors.SchemaErrors as errors:
            bad = set(errors.failure_cases["index"].dropna().astype(int))
            frames.append(raw.drop(index=list(bad)))
    rows = pd.concat(frames, ignore_index=True)
    rows = rows.assign(_modified=pd.to_datetime(rows.modified_at), _order=range(len(rows)))
    latest = rows.sort_values(["_modified", "_order"]).groupby("subscriber_key").tail(1)
    return latest.set_index("subscriber_key")


def test_data_extension_holds_the_latest_valid_contact_of_each_key(pipeline: Pipeline) -> None:
    expected = expected_contacts()
    rows = pd.concat(
        dex.retrieve_rows(pipeline.client, CONTACTS.de_key, ["subscriber_key", "email", "first_name"])
    )
    actual = rows.set_index("subscriber_key")
    assert sorted(actual.index) == sorted(expected.index)
    assert actual.email.to_dict() == expected.email.to_dict()
    assert actual.first_name.to_dict() == expected.first_name.to_dict()


def test_warehouse_tables_match_independent_computations(pipeline: Pipeline) -> None:
    staged_rows = sum(len(pd.read_csv(SAMPLE / "crm" / "contacts" / f"contacts_{d}.csv")) for d in DAYS)
    [(loaded,)] = pipeline.sql("SELECT count(*) FROM crm_contacts")
    assert 0.98 * staged_rows <= loaded <= staged_rows
    api = pd.concat(
        [
            page
            for ot in trk.EVENT_OBJECTS
            for page in trk.retrieve_events(
                pipeline.client, ot, datetime(2026, 10, 31), datetime(2026, 11, 4) - timedelta(seconds=1)
            )
        ]
    )
    [(events,)] = pipeline.sql("SELECT count(*) FROM tracking_events")
    assert events == len(api) > 0
    [(sent, opens, send_rows)] = pipeline.sql(
        "SELECT sum(sent), sum(unique_opens), count(*) FROM campaign_performance"
    )
    assert sent == (api.event_type == "Sent").sum()
    assert opens == api.loc[api.event_type == "Open", "subscriber_key"].nunique()
    assert send_rows == 1
    assert pipeline.sql("SELECT email_name, subject FROM campaign_performance") == [
        ("test newsletter", "November trails")  # from the extract's SendJobs.csv
    ]
    audience = segments.segment_size(pipeline.client, segments.NEWSLETTER_AUDIENCE.de_key)
    assert sent == audience
    not_opened = segments.segment_size(pipeline.client, segments.NOT_OPENED.de_key)
    assert not_opened == audience - opens


def test_crm_update_file_lists_unsubscribes_and_bounces_safely(pipeline: Pipeline) -> None:
    updates = pd.read_csv(pipeline.root / "inbound" / "nto_mce_updates.csv", dtype=str, keep_default_na=False)
    [(unsubscribed,)] = pipeline.sql(
        "SELECT count(DISTINCT subscriber_key) FROM tracking_events WHERE event_type = 'Unsubscribe'"
    )
    bounces = pipeline.sql(
        "SELECT subscriber_key, event_date FROM tracking_events WHERE event_type = 'HardBounce'"
    )
    versions = pd.DataFrame(
        pipeline.sql("SELECT subscriber_key, lower(email), modified_at FROM crm_contacts"),
        columns=["key", "email", "modified"],
    ).sort_values(["key", "modified"])

    def of_current_email(key: str, bounced_at: datetime) -> bool:
        """Independently of the SQL: after the first version showing the address it has now."""
        mine = versions[versions.key == key]
        if mine.empty or mine.email.nunique(dropna=False) == 1:
            return True
        current = mine.email.iloc[-1]
        replaced_at = mine[mine.email != current].modified.max()
        since = mine[(mine.email == current) & (mine.modified > replaced_at)].modified.min()
        return current is not None and bounced_at > since

    hard = {key for key, at in bounces if of_current_email(key, at)}
    assert (updates.update_type == "unsubscribe").sum() == unsubscribed
    assert set(updates[updates.update_type == "hard_bounce"].subscriber_key) == hard
    assert (updates.update_type == "hard_bounce").sum() == len(hard) > 0
    assert not updates.apply(lambda col: col.str.match(r"^[=+\-@]")).any().any()


UPDATES_EXPORT = dg.AssetKey(["crm", "updates_export"])
MCE_ROWS = dg.AssetKey(["warehouse", "mce_contact_rows"])


def test_the_crm_update_file_sends_back_only_changes_made_in_mce(tmp_path: Path) -> None:
    """Day 2 reached the warehouse but not yet MCE: the CRM's own changes of that day differ from
    what MCE holds, and sending MCE's values back would undo them. Only the edit made in MCE goes."""
    day1, day2 = (pd.read_csv(SAMPLE / "crm" / "contacts" / f"contacts_{d}.csv", dtype=str) for d in DAYS[:2])
    both = day1.merge(day2, on="subscriber_key", suffixes=("_1", "_2"))
    details = ["email", "first_name", "last_name", "phone"]
    changed_on_day2 = sum(
        int(((both[f"{f}_1"] != both[f"{f}_2"]) & both[f"{f}_1"].notna()).sum()) for f in details
    )
    assert changed_on_day2 > 0
    edited = next(k for k in day1.subscriber_key if k not in set(day2.subscriber_key))
    warehouse_only = dg.AssetSelection.assets(
        export_key("contacts"), staged_key("contacts"), dg.AssetKey(["warehouse", "crm_contacts"])
    )
    updates = dg.AssetSelection.assets(MCE_ROWS, UPDATES_EXPORT)
    with LocalMce(tmp_path / "mce") as mce:
        p = Pipeline(tmp_path, mce)
        assert p.run(warehouse_only | dg.AssetSelection.assets(de_key("contacts")), DAYS[0]).success
        assert p.run(warehouse_only, DAYS[1]).success
        assert (
            dex.upsert_rows(
                p.client, CONTACTS.de_key, [{"subscriber_key": edited, "first_name": "Edited"}]
            ).saved
            == 1
        )
        result = p.run(updates)
        assert result.success
        [written] = result.asset_materializations_for_node("crm__updates_export")
        sent = pd.read_csv(tmp_path / "inbound" / "nto_mce_updates.csv", dtype=str, keep_default_na=False)
        changes = sent[sent.update_type == "contact_change"]
        assert list(zip(changes.subscriber_key, changes.field, changes.new_value, strict=True)) == [
            (edited, "first_name", "Edited")
        ]
        assert written.metadata["contact_details_held_back"].value == changed_on_day2

        # Once day 2 is in MCE, nothing is held back and the edit is still the only change.
        assert p.run(dg.AssetSelection.assets(de_key("contacts")), DAYS[1]).success
        result = p.run(updates)
        [written] = result.asset_materializations_for_node("crm__updates_export")
        assert written.metadata["contact_details_held_back"].value == 0
        sent = pd.read_csv(tmp_path / "inbound" / "nto_mce_updates.csv", dtype=str, keep_default_na=False)
        assert list(sent[sent.update_type == "contact_change"].subscriber_key) == [edited]


def fingerprint(p: Pipeline) -> dict[str, int]:
    """A hash of every table that must not change when nothing new arrives."""
    tables = {
        "import_ledger": "SELECT * EXCLUDE (started_at, finished_at) FROM import_ledger",
        # What MCE holds; the raw fingerprints only fill in (`recorded_fingerprints`).
        "row_hashes": "SELECT * EXCLUDE (raw_fp, staged_in) FROM row_hashes",
        **{
            t: f"SELECT * FROM {t}"
            for t in ("crm_contacts", "tracking_events", "web_page_views", "customer_360")
        },
    }
    return {name: hash(tuple(sorted(map(repr, p.sql(query))))) for name, query in tables.items()}


def recorded_fingerprints(p: Pipeline) -> dict[str, tuple[int, str]]:
    """Each row's recorded raw fingerprint and the day that staged it, where one is recorded."""
    rows = p.sql(
        "SELECT de_key || '/' || row_key, raw_fp, staged_in FROM row_hashes WHERE raw_fp IS NOT NULL"
    )
    return {key: (fp, day) for key, fp, day in rows}


def test_a_backfill_over_days_already_done_changes_nothing(pipeline: Pipeline) -> None:
    before, imports, creates = fingerprint(pipeline), pipeline.imports_started(), pipeline.calls("Create")
    fingerprinted = recorded_fingerprints(pipeline)
    assert fingerprinted  # the days after the first import fingerprinted their rows
    uploads = pipeline.resources["storage"].upload_dir("contacts")
    old, recent = uploads / "contacts_2026-09-01.delta.csv", uploads / "contacts_2026-10-31.delta.csv"
    for path, days in ((old, 31), (recent, 29)):
        path.write_text("subscriber_key\nK1\n")
        os.utime(path, (time.time() - days * 86400,) * 2)
    removed = []
    for day in DAYS:
        result = pipeline.run(CRM | TRACKING, day)
        assert result.success
        # MCE extracted the same events again: the same files, known to be merged already.
        [merged] = result.asset_materializations_for_node("warehouse__tracking_events")
        assert (merged.metadata["merge_path"].value, merged.metadata["events_new"].value) == ("recorded", 0)
        [synced] = result.asset_materializations_for_node("mce__contacts_de")
        assert (
            synced.metadata["outcome"].value == "nothing changed since the last successful import: no import"
        )
        removed.append(synced.metadata["old_files_removed"].value)
    assert removed == [1, 0, 0]  # the sync's delta files older than NTO_KEEP_FILES_DAYS (30) go
    compare = {"warehouse__tracking_events": {"compare_again": True}}
    compared = pipeline.run(dg.AssetSelection.assets(["warehouse", "tracking_events"]), DAYS[0], compare)
    [merged] = compared.asset_materializations_for_node("warehouse__tracking_events")
    assert (merged.metadata["merge_path"].value, merged.metadata["events_new"].value) == ("screened", 0)
    assert not old.exists() and recent.exists()
    assert pipeline.run(LATER).success
    assert fingerprint(pipeline) == before
    after = recorded_fingerprints(pipeline)
    assert {key: after[key] for key in fingerprinted} == fingerprinted  # kept; others may fill in
    assert pipeline.imports_started() == imports  # no second import of anything
    assert pipeline.calls("Create") == creates  # no import definition, no data extension


def new_customers_file(path: Path, *keys: str) -> Path:
    """A staged new_customers file (`new_customers_<day>.csv`) of `keys`, modified on its day."""
    day = datetime.strptime(path.stem.rsplit("_", 1)[1], "%Y-%m-%d").strftime("%m/%d/%Y 10:00:00")
    path.write_text(
        "subscriber_key,email,first_name,locale,home_store,first_order_total,created_at,modified_at\r\n"
        + "".join(f"{k},{k.lower()}@example.com,Al,en-US,Portland Pearl,1.00,{day},{day}\r\n" for k in keys)
    )
    return path


def test_a_crash_between_import_start_and_ledger_recovers_without_a_second_import(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    export = default_config().export("new_customers")
    staged = new_customers_file(tmp_path / "new_customers_2026-11-09.csv", "NTO-CRASH1", "NTO-CRASH2")
    fs = transfer.open_sftp(local_settings(pipeline.mce.info)[1])
    with duckdb.connect(str(pipeline.root / "warehouse.duckdb")) as con:

        def crash(task_id: str) -> None:
            raise RuntimeError(f"killed after starting task {task_id}")

        with pytest.raises(RuntimeError, match="killed after starting task"):
            sync_partition(
                pipeline.client, fs, kept_open(con), export, staged, "2026-11-09", tmp_path, after_start=crash
            )
        [(status,)] = con.execute(
            "SELECT status FROM import_ledger WHERE partition_key = '2026-11-09'"
        ).fetchall()
        assert status == "started"
        imports = pipeline.imports_started()
        outcome = sync_partition(pipeline.client, fs, kept_open(con), export, staged, "2026-11-09", tmp_path)
        assert outcome.status == "recovered"
        assert pipeline.imports_started() == imports  # no second import
        assert outcome.result is not None and outcome.result.successful == 2
        again = sync_partition(pipeline.client, fs, kept_open(con), export, staged, "2026-11-09", tmp_path)
        assert again.status == "unchanged"


def test_a_crash_before_the_task_id_was_recorded_finds_the_task_in_mce(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nto_etl.ledger import ImportLedger

    export = default_config().export("new_customers")
    staged = new_customers_file(tmp_path / "new_customers_2026-11-10.csv", "NTO-CRASH3")
    fs = transfer.open_sftp(local_settings(pipeline.mce.info)[1])
    with duckdb.connect(str(pipeline.root / "warehouse.duckdb")) as con:
        with monkeypatch.context() as patch:
            patch.setattr(ImportLedger, "started", lambda *a: (_ for _ in ()).throw(RuntimeError("killed")))
            with pytest.raises(RuntimeError, match="killed"):
                sync_partition(pipeline.client, fs, kept_open(con), export, staged, "2026-11-10", tmp_path)
        imports = pipeline.imports_started()
        outcome = sync_partition(pipeline.client, fs, kept_open(con), export, staged, "2026-11-10", tmp_path)
    assert outcome.status == "recovered"
    assert pipeline.imports_started() == imports
    rows = dex.retrieve_rows(
        pipeline.client,
        export.de_key,
        ["subscriber_key"],
        pipeline.client.simple_filter("subscriber_key", "equals", "NTO-CRASH3"),
    )
    assert sum(len(r) for r in rows) == 1


def test_two_runs_syncing_the_same_content_import_it_once(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sensor's run and the schedule's, say: both find no ledger entry for the content. Each
    holds at the upload until the other arrives (or 3 s pass), so without the claim both would
    upload and import."""
    export = default_config().export("new_customers")
    staged = new_customers_file(tmp_path / "new_customers_2026-11-11.csv", "NTO-RACE1", "NTO-RACE2")
    warehouse = one_writer_at_a_time(pipeline.root / "warehouse.duckdb")
    both_at_the_upload = threading.Barrier(2, timeout=3)
    upload, uploads = transfer.upload_atomic, []

    def held_upload(*args: Any, **kwargs: Any) -> transfer.Transferred:
        uploads.append(args[1])
        with suppress(threading.BrokenBarrierError):
            both_at_the_upload.wait()
        return upload(*args, **kwargs)

    monkeypatch.setattr(transfer, "upload_atomic", held_upload)
    imports = pipeline.imports_started()
    outcomes: list[SyncOutcome] = []
    errors: list[BaseException] = []

    def run(work: Path) -> None:
        fs = transfer.open_sftp(local_settings(pipeline.mce.info)[1])
        try:
            outcomes.append(
                sync_partition(pipeline.client, fs, warehouse, export, staged, "2026-11-11", work)
            )
        except BaseException as exc:
            errors.append(exc)

    uploads_dir = tmp_path / "uploads"  # one per dataset, as PipelineStorage.upload_dir gives it
    runs = [threading.Thread(target=run, args=(uploads_dir,)) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=120)
    assert errors == []
    assert len(uploads) == 1
    assert pipeline.imports_started() == imports + 1
    assert sorted(o.status for o in outcomes) == ["imported", "recovered"]
    assert {o.task_id for o in outcomes} == {outcomes[0].task_id}
    assert all(o.result is not None and o.result.successful == 2 for o in outcomes)
    [(status,)] = pipeline.sql("SELECT status FROM import_ledger WHERE partition_key = '2026-11-11'")
    assert status == "Completed"
    sha = outcomes[0].content_sha256 or ""
    assert [p.name for p in uploads_dir.iterdir()] == [f"{staged.stem}.{sha[:16]}.delta.csv"]


def test_a_failed_upload_releases_its_claim_and_a_dead_runs_claim_lapses(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nto_etl import sync

    export = default_config().export("new_customers")
    staged = new_customers_file(tmp_path / "new_customers_2026-11-12.csv", "NTO-CLAIM1")
    warehouse = one_writer_at_a_time(pipeline.root / "warehouse.duckdb")
    fs = transfer.open_sftp(local_settings(pipeline.mce.info)[1])
    ledger = "SELECT status, message FROM import_ledger WHERE partition_key = '2026-11-12'"

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("SFTP connection lost")

    with monkeypatch.context() as patch:
        patch.setattr(transfer, "upload_atomic", broken)
        with pytest.raises(OSError, match="connection lost"):
            sync_partition(pipeline.client, fs, warehouse, export, staged, "2026-11-12", tmp_path)
    assert pipeline.sql(ledger) == [("not_started", "OSError: SFTP connection lost")]

    with monkeypatch.context() as patch:  # a run killed while it uploads cannot release its claim
        patch.setattr(transfer, "upload_atomic", broken)
        patch.setattr(sync, "_release", lambda *args: None)
        with pytest.raises(OSError, match="connection lost"):
            sync_partition(pipeline.client, fs, warehouse, export, staged, "2026-11-12", tmp_path)
    assert pipeline.sql(ledger)[0][0] == "claimed"
    imports = pipeline.imports_started()
    began = time.monotonic()
    outcome = sync_partition(
        pipeline.client, fs, warehouse, export, staged, "2026-11-12", tmp_path, claim_lease=2
    )
    assert time.monotonic() - began >= 1  # it waited for the claim to lapse
    assert outcome.status == "imported" and pipeline.imports_started() == imports + 1
    assert pipeline.sql(ledger)[0][0] == "Completed"


def test_a_run_whose_silent_claim_was_taken_over_follows_the_import_instead(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run's upload outlasts its claim's lease; a second run takes the import over.
    When the first run's upload ends, it must neither start a second import nor put its file
    in place of the one the second run's import reads."""
    export = default_config().export("new_customers")
    staged = new_customers_file(tmp_path / "new_customers_2026-11-13.csv", "NTO-SLOW1")
    warehouse = one_writer_at_a_time(pipeline.root / "warehouse.duckdb")
    upload, uploads, slow = transfer.upload_atomic, [], threading.Event()
    landed: list[str] = []
    withdrawn: list[Path] = []

    def first_upload_slow(*args: Any, **kwargs: Any) -> transfer.Transferred:
        uploads.append(args[1])
        if len(uploads) == 1:
            assert slow.wait(timeout=60)
        try:
            sent = upload(*args, **kwargs)
        except transfer.UploadWithdrawn:
            withdrawn.append(args[1])
            raise
        landed.append(sent.path)
        return sent

    monkeypatch.setattr(transfer, "upload_atomic", first_upload_slow)
    imports = pipeline.imports_started()
    first: list[SyncOutcome] = []

    def slow_run() -> None:
        fs = transfer.open_sftp(local_settings(pipeline.mce.info)[1])
        first.append(
            sync_partition(pipeline.client, fs, warehouse, export, staged, "2026-11-13", tmp_path / "a")
        )

    thread = threading.Thread(target=slow_run)
    thread.start()
    wait_for(lambda: len(uploads) == 1, "the first run's upload")
    fs = transfer.open_sftp(local_settings(pipeline.mce.info)[1])
    second = sync_partition(
        pipeline.client, fs, warehouse, export, staged, "2026-11-13", tmp_path / "b", claim_lease=1
    )
    slow.set()
    thread.join(timeout=120)
    assert second.status == "imported"
    assert [o.status for o in first] == ["recovered"]
    assert first[0].task_id == second.task_id
    assert len(uploads) == 2 and pipeline.imports_started() == imports + 1
    # The first run's bytes never replaced the file the second run's import read from.
    assert len(landed) == 1 and len(withdrawn) == 1
    assert not [n for n in fs.ls("/Import", detail=False) if n.endswith(".part")]


def write_warehouse_from_another_process(database: Path, table: str) -> subprocess.CompletedProcess[str]:
    """What a warehouse step does when Dagster runs it in a process of its own."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; con = duckdb.connect(sys.argv[1]); "
            f"con.execute('CREATE TABLE {table} AS SELECT 1 AS wrote'); con.close()",
            str(database),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_the_warehouse_is_free_for_other_steps_while_mce_imports(tmp_path: Path) -> None:
    """DuckDB lets one process write a file. A real import takes minutes; the data extension's
    step must not hold the warehouse meanwhile, or a warehouse step running beside it (another
    process, as Dagster's multiprocess executor runs steps) fails on the file's lock."""
    with LocalMce(tmp_path / "mce") as mce:
        p = Pipeline(tmp_path, mce)
        assert p.run(
            dg.AssetSelection.assets(export_key("contacts"), staged_key("contacts")), DAYS[0]
        ).success
        mce.imports.stuck = 1  # the import stays Processing until released
        runs: list[dg.ExecuteInProcessResult] = []
        sync = threading.Thread(
            target=lambda: runs.append(p.run(dg.AssetSelection.assets(de_key("contacts")), DAYS[0]))
        )
        sync.start()
        try:
            wait_for(lambda: bool(mce.imports._parked), "the import never started")
            other_step = write_warehouse_from_another_process(tmp_path / "warehouse.duckdb", "other_step")
        finally:
            mce.imports.release_stuck()
            sync.join(timeout=120)
        assert other_step.returncode == 0, other_step.stderr[-500:]
        [run] = runs
        assert run.success
        [(status, rows)] = p.sql("SELECT status, row_count FROM import_ledger")
        assert status == "Completed"
        assert p.sql("SELECT count(*) FROM row_hashes") == [(rows,)]  # the held hashes, recorded
        assert p.sql("SELECT count(*) FROM pending_row_hashes") == [(0,)]
        assert p.sql("SELECT wrote FROM other_step") == [(1,)]

        # Reading the contacts back from MCE (paged, slow on a real tenant) does not hold it either.
        mce.service.inject(InjectedFault("Retrieve", fail=False, delay_seconds=3))
        retrieves = p.calls("Retrieve")
        reading = threading.Thread(target=lambda: runs.append(p.run(dg.AssetSelection.assets(MCE_ROWS))))
        reading.start()
        try:
            wait_for(lambda: p.calls("Retrieve") > retrieves, "no Retrieve reached MCE")
            other_step = write_warehouse_from_another_process(tmp_path / "warehouse.duckdb", "other_read")
        finally:
            reading.join(timeout=120)
        assert other_step.returncode == 0, other_step.stderr[-500:]
        assert runs[-1].success
        assert p.sql("SELECT count(*) FROM mce_contact_rows") == [(rows,)]


def test_checks_report_reconciliation_and_rejects(pipeline: Pipeline) -> None:
    result = pipeline.run(dg.AssetSelection.assets(staged_key("contacts"), de_key("contacts")), DAYS[0])
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks[REJECTS_CHECK].passed
    assert checks[REJECTS_CHECK].metadata["rows_rejected"].value > 0
    assert checks[RECONCILE_CHECK].passed


def test_a_blocking_reject_check_stops_the_import(tmp_path: Path) -> None:
    drop = tmp_path / "drop" / "contacts"
    drop.mkdir(parents=True)
    lines = (SAMPLE / "crm" / "contacts" / "contacts_2026-11-02.csv").read_text(encoding="utf-8").splitlines()
    broken = [lines[0]] + [line.replace("@", " at ") for line in lines[1:]]  # every email invalid
    (drop / "contacts_2026-11-02.csv").write_text("\n".join(broken) + "\n", encoding="utf-8")
    with LocalMce(tmp_path / "mce") as mce:
        p = Pipeline(tmp_path, mce, drop=tmp_path / "drop")
        chain = dg.AssetSelection.assets(
            dg.AssetKey(["crm", "contacts_export"]), staged_key("contacts"), de_key("contacts")
        )
        result = p.run(chain, "2026-11-02")
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert not checks[REJECTS_CHECK].passed
        assert checks[REJECTS_CHECK].metadata["reject_share"].value == 1.0
        assert not result.asset_materializations_for_node("mce__contacts_de")
        assert p.imports_started() == 0


def test_a_days_staging_skips_the_rows_mce_holds_and_a_full_refresh_restages_them(tmp_path: Path) -> None:
    """Daily full exports through the assets: the day after the first import fingerprints every
    row; the next skips the rows MCE holds; a full refresh must stage them again first."""
    drop = tmp_path / "drop" / "contacts"
    drop.mkdir(parents=True)
    day_two = [*(contact(f"C{i}") for i in range(1, 4)), contact("C4", first_name="Dee"), contact("C5")]
    exports = {
        "2026-11-01": [contact(f"C{i}") for i in range(1, 5)],
        "2026-11-02": day_two,
        "2026-11-03": [contact("C1", first_name="Eve", modified_at="2026-01-04 09:00:00"), *day_two[1:]],
    }
    for day, rows in exports.items():
        (drop / f"contacts_{day}.csv").write_text(
            "\n".join([CONTACTS_HEADER, *rows]) + "\n", encoding="utf-8"
        )
    with LocalMce(tmp_path / "mce") as mce:
        p = Pipeline(tmp_path, mce, drop=tmp_path / "drop")
        chain = dg.AssetSelection.assets(
            dg.AssetKey(["crm", "contacts_export"]), staged_key("contacts"), de_key("contacts")
        )

        def day(partition: str, ops: dict[str, Any] | None = None) -> tuple[int, int, int]:
            result = p.run(chain, partition, ops)
            assert result.success, partition
            [staged] = result.asset_materializations_for_node("staging__contacts")
            [synced] = result.asset_materializations_for_node("mce__contacts_de")
            held, rows = staged.metadata["rows_mce_holds"].value, staged.metadata["dagster/row_count"].value
            return held, rows, synced.metadata["rows_uploaded"].value  # type: ignore[return-value]

        assert day("2026-11-01") == (0, 4, 4)
        assert day("2026-11-02") == (0, 5, 2)  # every row fingerprinted; C4 changed, C5 new
        assert day("2026-11-03") == (4, 1, 1)  # C2-C5 as MCE holds them: only C1 staged

        refresh = {"mce__contacts_de": {"full_refresh": True}}
        refused = p.run(dg.AssetSelection.assets(de_key("contacts")), "2026-11-03", refresh)
        assert not refused.success
        failure = str(refused.get_step_failure_events()[0].event_specific_data.error)  # type: ignore[union-attr]
        assert "left out 4 rows MCE already holds" in failure
        assert "materialize staging/contacts with full_refresh: true" in failure
        assert day("2026-11-03", {"staging__contacts": {"full_refresh": True}, **refresh}) == (0, 5, 5)
        names = {
            k: v["first_name"]
            for k, v in all_rows(p.client, CONTACTS.de_key, ["subscriber_key", "first_name"]).items()
        }
        assert names == {"KC1": "Eve", "KC2": "Ann", "KC3": "Ann", "KC4": "Dee", "KC5": "Ann"}


def test_mce_in_maintenance_fails_clearly_before_any_work(tmp_path: Path) -> None:
    with LocalMce(tmp_path / "mce") as mce:
        p = Pipeline(tmp_path, mce)
        assert p.run(
            dg.AssetSelection.assets(dg.AssetKey(["crm", "contacts_export"]), staged_key("contacts")), DAYS[0]
        ).success
        mce.service.system_status = "InMaintenance"
        result = p.run(dg.AssetSelection.assets(de_key("contacts")), DAYS[0])
        assert not result.success
        failure = result.get_step_failure_events()[0]
        assert "MCE system status is InMaintenance" in str(failure.event_specific_data.error)
        assert mce.service.calls.get("Create", 0) == 0


def test_export_sensor_sees_each_tracking_extract_once(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nto_etl.defs.automation import export_sensor

    # The extracts were written moments ago; waiting for files to settle is tested in test_automation.
    monkeypatch.setenv("NTO_DROP_SETTLE_SECONDS", "0")

    resources = {"mce": pipeline.resources["mce"]}
    result = export_sensor(dg.build_sensor_context(resources=resources))
    assert sorted(r.partition_key for r in result.run_requests) == DAYS
    again = export_sensor(dg.build_sensor_context(cursor=result.cursor, resources=resources))
    assert again.run_requests == []
