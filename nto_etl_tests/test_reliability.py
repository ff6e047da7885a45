"""Under every injected fault the pipeline completes (after retries or a re-run) with nothing lost or imported twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from nto_etl.drills import DRILLS, Drill, run_drills, run_soak

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "crm"
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {o.name: o for o in run_drills(tmp_path_factory.mktemp("drills"), SAMPLE, DAYS)}


@pytest.mark.parametrize("drill", DRILLS, ids=[d.name for d in DRILLS])
def test_each_fault_leaves_nothing_lost_or_duplicated(drill: Drill, outcomes: dict[str, object]) -> None:
    outcome = outcomes[drill.name]
    assert outcome.faults_injected >= 1  # type: ignore[attr-defined]
    assert outcome.rows_lost == 0  # type: ignore[attr-defined]
    assert outcome.duplicate_imports == 0  # type: ignore[attr-defined]
    assert outcome.ledger_matches_mce  # type: ignore[attr-defined]
    assert outcome.partial_files == 0  # type: ignore[attr-defined]


def test_faults_that_cannot_be_retried_stop_the_run_with_their_cause(outcomes: dict[str, object]) -> None:
    stopped = {name: o.first_run for name, o in outcomes.items()}  # type: ignore[attr-defined]
    assert "still Processing" in stopped["import stuck in Processing"]
    assert "blocking asset check failed" in stopped["import completed with refused rows"]
    assert stopped["SFTP login locked out after bad passwords"] != "completed"
    assert stopped["SOAP fault 17 (throttled) on Retrieve, 3 times"] == "completed"  # retried within the run


def test_a_fault_soak_ends_equal_to_a_fault_free_run(tmp_path: Path) -> None:
    result = run_soak(tmp_path, rows=1200, days=4, rate=0.08, seed=11)
    assert sum(result.faults_injected.values()) >= 5
    assert result.runs > result.days  # some partitions needed another run
    assert result.rows_lost == 0
    assert result.duplicate_imports == 0
    assert result.ledgers_equal
    assert result.tables_equal
