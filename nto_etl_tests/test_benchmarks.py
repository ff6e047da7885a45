"""The benchmark harness at a tiny scale: each scenario runs in its own process, as `make bench` runs
it, and reports what the report needs. Timings at this scale mean nothing and are not checked;
`make bench` measures the real sizes (docs/PERFORMANCE.md)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import run

SCALE = 0.002  # 2,000 contacts, 20,000 tracking events, 200 KB over SFTP


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    work = tmp_path_factory.mktemp("bench")
    return {name: run.run_scenario(name, SCALE, work) for name in run.SCENARIOS}


@pytest.mark.parametrize("name", run.SCENARIOS)
def test_each_scenario_runs_and_reports(name: str, results: dict[str, dict[str, Any]]) -> None:
    result = results[name]
    assert "error" not in result, result.get("error")
    assert result["name"] == name
    assert result["rows"] > 0 and result["seconds"] > 0
    assert isinstance(result["met"], bool) and result["ratio_text"] and result["notes"]


def test_stage_reports_where_its_time_went(results: dict[str, dict[str, Any]]) -> None:
    stage = results["stage"]
    assert stage["rows"] >= int(1_000_000 * SCALE)  # the export's rows, repeated keys among them
    assert stage["ratio"] == pytest.approx(stage["seconds"] / stage["baseline_seconds"])
    for phase in ("screening every row", "pandera judging", "writing the staged file", "DuckDB reading"):
        assert phase in stage["notes"]
    assert "kept in memory as Arrow; kept in a DuckDB table instead" in stage["notes"]


def test_sync_uploads_only_the_changed_rows(results: dict[str, dict[str, Any]]) -> None:
    sync = results["sync"]
    assert (
        "uploaded only its" in sync["notes"] and "The local MCE runs in a process of its own" in sync["notes"]
    )
    # Day 3 skipped most of its full export (rows MCE held) and uploaded some of the rest.
    assert sync["rows"] * 0.9 < sync["rows_skipped"] < sync["rows"]
    assert 0 < sync["rows_uploaded"] <= sync["rows"] - sync["rows_skipped"]


def test_tracking_merges_the_same_file_again_without_reading_it_unless_asked(
    results: dict[str, dict[str, Any]],
) -> None:
    tracking = results["tracking"]
    assert {k: v for k, v in tracking["merged_again"].items() if k != "seconds"} == {
        "path": "recorded",
        "new": 0,
    }
    assert {k: v for k, v in tracking["compared_again"].items() if k != "seconds"} == {
        "path": "screened",
        "new": 0,
    }


def test_the_report_has_a_row_and_a_note_per_scenario(results: dict[str, dict[str, Any]]) -> None:
    report = run.report(list(results.values()), SCALE, "pytest")
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0].strip("| ") for r in rows] == run.SCENARIOS
    assert all(f"- **{name}**:" in report for name in run.SCENARIOS)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (
            ["--only", "stage,sync", "--out", "/some/where/report.md", "--work", "/scratch/bench"],
            "--only stage,sync",
        ),
        (["--scale", "0.01", "--report-only", "--out", "r.md"], "--scale 0.01 --report-only"),
    ],
)
def test_the_report_names_what_was_measured_not_where_its_files_went(argv: list[str], named: str) -> None:
    args = run.parser().parse_args(argv)
    assert run.measuring_command(args) == f"python -m benchmarks.run {named}"
