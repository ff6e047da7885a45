"""Benchmarks against the local MCE, each reported as a ratio to a baseline measured in the same run.

    python -m benchmarks.run [--scale 1.0] [--only stage,sync,...] [--out docs/PERFORMANCE.md] [--report-only]

Each scenario runs in its own process (so its peak RSS is its own) and prints one JSON
line; this driver collects them into a table. Absolute times on shared machines are
noise: the ratios are the result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

SCENARIOS = ["stage", "sync", "tracking", "retrieve", "sftp", "memory", "rowwise"]
TARGETS = {
    "stage": ("staging 1M contacts vs DuckDB read + COPY of the same CSV", "<= 2.0x"),
    "sync": ("daily sync of a 1M export with ~1% changed, vs scenario 1's baseline", "<= 3.0x"),
    "tracking": ("10M tracking events merged into DuckDB vs a raw DuckDB COPY of the same file", "<= 1.5x"),
    "retrieve": ("parsing a 2,500-row Retrieve page: lxml fast path vs zeep objects", ">= 10x faster"),
    "sftp": (
        "100 MB up and down through nto_etl.transfer vs OpenSSH's sftp, same server",
        ">= 0.8x throughput",
    ),
    "memory": ("10M-row CRM export staged and imported: peak RSS", "<= 1.5 GB"),
    "rowwise": ("100k rows: import path vs individual SOAP upserts", ">= 50x faster"),
}


def run_scenario(name: str, scale: float, work: Path) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scenarios",
            name,
            "--scale",
            str(scale),
            "--work",
            str(work / name),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"name": name, "error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(lines[-1])


def report(results: list[dict], scale: float, command: str) -> str:
    lines = [
        "# Performance",
        "",
        f"Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({platform.machine()}, "
        f"{os.cpu_count()} cores, scale {scale:g}: 1.0 means the sizes of the targets), from the latest result of each "
        "scenario in `.state/bench/results.jsonl` (`make bench` runs them all; `--only` re-runs some; each note says "
        "when its scenario ran). Each scenario ran in its own process against a local MCE on loopback; each ratio is "
        "to a baseline measured in the same process, minutes apart at most.",
        "",
        "| scenario | what | rows | time (s) | rows/s | baseline (s) | ratio | target | met | peak RSS (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        what, target = TARGETS[r["name"]]
        if "error" in r:
            lines.append(f"| {r['name']} | {what} | | | | | | {target} | ERROR: {r['error']} | |")
            continue
        rate = r["rows"] / r["seconds"] if r.get("rows") and r["seconds"] else 0
        lines.append(
            f"| {r['name']} | {what} | {r.get('rows', ''):,} | {r['seconds']:.2f} | {rate:,.0f} | "
            f"{r.get('baseline_seconds', 0):.2f} | {r.get('ratio_text', '')} | {target} | "
            f"{'yes' if r.get('met') else 'NO'} | {r.get('peak_rss_mb', 0):,.0f} |"
        )
    lines += ["", "## Notes per scenario", ""]
    for r in results:
        if r.get("notes"):
            by = f" by `{r['command']}`" if r.get("command") else ""
            when = f" (measured {r['measured']}{by}.)" if r.get("measured") else ""
            lines += [f"- **{r['name']}**: {r['notes'].rstrip()}{when}"]
    return "\n".join(lines) + "\n"


def measuring_command(args: argparse.Namespace) -> str:
    """The command as the report names it: what was measured, not where its files went
    (`--work` and `--out` are paths of this machine)."""
    parts = ["python -m benchmarks.run"]
    if args.scale != 1.0:
        parts.append(f"--scale {args.scale:g}")
    if args.only:
        parts.append(f"--only {args.only}")
    if args.report_only:
        parts.append("--report-only")
    return " ".join(parts)


def parser() -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(description=__doc__)
    arguments.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the target sizes (1.0 = 1M / 10M rows)"
    )
    arguments.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    arguments.add_argument("--work", default=".state/bench")
    arguments.add_argument("--out", default="docs/PERFORMANCE.md")
    arguments.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the stored results"
    )
    return arguments


def main() -> None:
    args = parser().parse_args()
    names = [] if args.report_only else args.only.split(",") if args.only else SCENARIOS
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    # Every result is kept (results.jsonl); the report shows each scenario's latest at this scale,
    # so one scenario can be re-run without re-running the others.
    history = work / "results.jsonl"
    started = time.monotonic()
    everything = set(names) == set(SCENARIOS) and args.scale == 1.0
    command = "make bench" if everything else measuring_command(args)
    for name in names:
        print(f"running {name} ...", flush=True)
        result = {
            **run_scenario(name, args.scale, work),
            "scale": args.scale,
            "measured": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "command": command,
        }
        print(json.dumps(result), flush=True)
        with history.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
    latest: dict[str, dict] = {}
    for line in history.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("scale", 1.0) == args.scale:
            latest[entry["name"]] = entry
    results = [latest[n] for n in SCENARIOS if n in latest]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report(results, args.scale, command))
    print(f"{time.monotonic() - started:.0f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
