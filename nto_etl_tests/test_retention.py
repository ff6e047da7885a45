"""The pipeline's copies of the data (staged, rejects and delta files) are removed once old."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from nto_etl.definitions import defs
from nto_etl.defs.crm_sync import export_key, staged_key
from nto_etl.defs.resources import PipelineStorage
from nto_etl.mce.errors import MceConfigurationError
from nto_etl.retention import keep_days, remove_old_files
from nto_etl_tests.helpers import staging_resources

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "crm"
DAY = 86400


def aged(path: Path, days: float) -> Path:
    path.write_text("subscriber_key\nK1\n")
    when = time.time() - days * DAY
    os.utime(path, (when, when))
    return path


def test_staging_removes_its_files_not_touched_for_the_kept_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = PipelineStorage(crm_drop_url=str(SAMPLE), work_dir=str(tmp_path / "work"))
    folder = storage.staging_dir("contacts")
    folder.mkdir(parents=True)
    old = [aged(folder / "contacts_2026-09-01.csv", 40), aged(folder / "contacts_2026-09-01.rejects.csv", 40)]
    kept = [
        aged(folder / "contacts_2026-10-20.csv", 10),
        aged(folder / "contacts_2025-01-01.csv", 0),  # an old day, staged again by a backfill just now
        aged(folder / "notes.txt", 40),  # not the pipeline's
    ]
    monkeypatch.setenv("NTO_KEEP_FILES_DAYS", "30")
    wanted = {export_key("contacts"), staged_key("contacts")}
    assets = [a for a in defs().assets or [] if isinstance(a, dg.AssetsDefinition) and set(a.keys) & wanted]
    result = dg.materialize(
        assets, partition_key="2026-11-01", resources=staging_resources(storage, tmp_path)
    )
    assert result.success
    [staged] = result.asset_materializations_for_node("staging__contacts")
    assert staged.metadata["old_files_removed"].value == 2
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in kept)
    assert (folder / "contacts_2026-11-01.csv").exists()  # the day just staged


def test_the_kept_days_are_a_positive_number() -> None:
    assert keep_days({}) == 30
    assert keep_days({"NTO_KEEP_FILES_DAYS": "7.5"}) == 7.5
    with pytest.raises(MceConfigurationError, match="NTO_KEEP_FILES_DAYS must be more than 0"):
        keep_days({"NTO_KEEP_FILES_DAYS": "0"})


def test_only_the_pipelines_old_files_directly_in_the_folder_go(tmp_path: Path) -> None:
    old_delta = aged(tmp_path / "contacts_2026-09-01.delta.csv", 31)
    old_part = aged(tmp_path / "contacts_2026-09-02.delta.csv.part", 31)  # a write that died
    (tmp_path / "sub").mkdir()
    below = aged(tmp_path / "sub" / "contacts_2026-09-01.csv", 31)
    recent = aged(tmp_path / "contacts_2026-10-30.delta.csv", 29)
    assert remove_old_files(tmp_path, 30) == [old_delta, old_part]
    assert below.exists() and recent.exists()
    assert remove_old_files(tmp_path / "absent", 30) == []


def test_loading_a_day_whose_staged_file_is_gone_says_to_stage_it_again(tmp_path: Path) -> None:
    storage = PipelineStorage(crm_drop_url=str(SAMPLE), work_dir=str(tmp_path / "work"))
    load = dg.AssetKey(["warehouse", "crm_contacts"])
    assets = [a for a in defs().assets or [] if isinstance(a, dg.AssetsDefinition) and load in a.keys]
    result = dg.materialize(
        assets,
        partition_key="2026-11-09",
        resources=staging_resources(storage, tmp_path),
        raise_on_error=False,
    )
    [failure] = result.get_step_failure_events()
    assert "contacts_2026-11-09.csv is missing: materialize staging/contacts for 2026-11-09 first" in str(
        failure.event_specific_data
    )


def test_a_bad_kept_days_setting_stops_staging_before_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = PipelineStorage(crm_drop_url=str(SAMPLE), work_dir=str(tmp_path / "work"))
    monkeypatch.setenv("NTO_KEEP_FILES_DAYS", "a month")
    wanted = {export_key("contacts"), staged_key("contacts")}
    assets = [a for a in defs().assets or [] if isinstance(a, dg.AssetsDefinition) and set(a.keys) & wanted]
    result = dg.materialize(
        assets,
        partition_key="2026-11-01",
        resources=staging_resources(storage, tmp_path),
        raise_on_error=False,
    )
    [failure] = result.get_step_failure_events()
    assert "NTO_KEEP_FILES_DAYS must be a number" in str(failure.event_specific_data)
    assert not storage.staging_dir("contacts").exists() or not any(storage.staging_dir("contacts").iterdir())
