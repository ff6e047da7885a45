"""The bad-input corpus (nto_etl_tests/corpus, written by scripts/make_bad_input_corpus.py).

Each file gets exactly the error or the rejects its manifest entry names, and nothing
from a file that cannot be read reaches MCE.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from nto_etl.contracts import MODELS
from nto_etl.defs.crm_sync import de_key, export_key, staged_key
from nto_etl.mce_local import LocalMce
from nto_etl.staging import ExportFileError, stage_export
from nto_etl_tests.test_pipeline import Pipeline

CORPUS = Path(__file__).with_name("corpus")
CASES: list[dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text())


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert {c["dataset"] for c in CASES} == set(MODELS) - {"tracking_events"}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_each_file_gets_its_error_or_its_rejects(case: dict[str, Any], tmp_path: Path) -> None:
    source = CORPUS / case["name"]
    model = MODELS[case["dataset"]]
    if "error" in case:
        with pytest.raises(ExportFileError, match=re.escape(case["error"])) as info:
            stage_export(str(source), model, tmp_path)
        assert str(source) in str(info.value)
        assert not any(tmp_path.glob("*.csv"))
        return
    result = stage_export(str(source), model, tmp_path)
    with open(result.rejects_path, newline="", encoding="utf-8") as handle:
        got = [[int(r["row"]), r["column"] or None, r["check"]] for r in csv.DictReader(handle)]
    assert got == case["rejects"]
    assert result.rows_staged == case["staged"]


def test_nothing_from_an_unreadable_file_reaches_mce(tmp_path: Path) -> None:
    unreadable = [c for c in CASES if "error" in c and c["dataset"] == "contacts"]
    assert len(unreadable) >= 10
    drop = tmp_path / "drop" / "contacts"
    drop.mkdir(parents=True)
    with LocalMce(tmp_path / "mce") as mce:
        pipeline = Pipeline(tmp_path, mce, drop=tmp_path / "drop")
        chain = dg.AssetSelection.assets(export_key("contacts"), staged_key("contacts"), de_key("contacts"))
        for day, case in enumerate(unreadable, start=1):
            partition = f"2026-11-{day:02d}"
            shutil.copyfile(CORPUS / case["name"], drop / f"contacts_{partition}.csv")
            result = pipeline.run(chain, partition)
            assert not result.success, case["name"]
            failure = result.get_step_failure_events()[0]
            assert failure.step_key == "staging__contacts"
            assert case["error"] in str(failure.event_specific_data.error.message), case["name"]
            assert not result.asset_materializations_for_node("mce__contacts_de")
        assert pipeline.imports_started() == 0
        assert mce.service.calls.get("Create", 0) == 0
        assert not list((Path(mce.info.state_dir) / "ftp" / "Import").iterdir())
