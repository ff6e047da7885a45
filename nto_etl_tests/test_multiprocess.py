"""The daily job as Dagster runs it in production: each step in a process of its own.

Every other pipeline test runs its steps in the test's process (`dg.materialize`). Here the
multiprocess executor runs the day's CRM chains against the local MCE, with the pools of
`dagster.yaml`: each step's process loads the code location and its settings from the
environment, and the steps share the single-writer DuckDB warehouse. (Whether they overlap
depends on timing; test_pipeline's concurrency test makes the overlap certain by holding
MCE's import.)
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from nto_etl.config import default_config
from nto_etl.definitions import defs
from nto_etl.mce_local import LocalMce

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
DAY = "2026-11-01"
DATASETS = [e.dataset for e in default_config().crm_exports]


def crm_daily_sync() -> dg.JobDefinition:
    """The job as each step's process loads it: from the code location, configured by the environment."""
    return defs().resolve_job_def("crm_daily_sync")


def test_the_daily_job_runs_its_steps_in_processes_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalMce(tmp_path / "mce") as mce:
        info = tmp_path / "mce-local.json"
        info.write_text(mce.info.to_json())
        info.chmod(0o600)
        for name, value in {
            "NTO_MCE_LOCAL_INFO": info,
            "NTO_CRM_DROP_URL": SAMPLE / "crm",
            "NTO_WEB_ANALYTICS_URL": SAMPLE / "web_analytics" / "page_views",
            "NTO_WORK_DIR": tmp_path / "work",
            "NTO_WAREHOUSE": tmp_path / "warehouse.duckdb",
            "NTO_CRM_INBOUND_URL": tmp_path / "inbound",
        }.items():
            monkeypatch.setenv(name, str(value))
        monkeypatch.chdir(REPO)  # each step's process imports this module from here
        pools = yaml.safe_load((REPO / "dagster.yaml").read_text(encoding="utf-8"))
        (tmp_path / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster"), overrides=pools) as instance:
            result = dg.execute_job(
                dg.reconstructable(crm_daily_sync), instance=instance, tags={"dagster/partition": DAY}
            )
            assert result.success, [e.message for e in result.all_events if e.is_failure]
            step_processes = {
                e.pid for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START
            }
            imported = instance.get_latest_materialization_event(dg.AssetKey(["mce", "contacts_de"]))
        assert len(step_processes) == 4 * len(DATASETS)  # per dataset: export, staged, DE, warehouse load
        assert imported is not None and imported.asset_materialization is not None
        assert imported.asset_materialization.metadata["import_status"].value == "Completed"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        ledger = con.execute("SELECT de_key, status FROM import_ledger ORDER BY de_key").fetchall()
        loaded = {t: con.execute(f"SELECT count(*) FROM crm_{t}").fetchall()[0][0] for t in DATASETS}
    assert ledger == [
        (e.de_key, "Completed") for e in sorted(default_config().crm_exports, key=lambda e: e.de_key)
    ]
    assert all(rows > 0 for rows in loaded.values()), loaded
