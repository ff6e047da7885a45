"""`nto-etl reliability-report`: run the fault drills, a fault soak and the bad-input corpus, write docs/RELIABILITY.md."""

from __future__ import annotations

import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from nto_etl.contracts import MODELS
from nto_etl.drills import run_drills, run_soak, temporary_work
from nto_etl.staging import ExportFileError, stage_export

COMMAND = "nto-etl reliability-report --out docs/RELIABILITY.md"


def corpus_rows(corpus: Path, work: Path) -> list[tuple[str, str, str, bool]]:
    """(file, expected, got, as expected) for each file of the bad-input corpus."""
    rows = []
    for case in json.loads((corpus / "manifest.json").read_text()):
        source = corpus / case["name"]
        model = MODELS[case["dataset"]]
        expected = case.get("error") or f"{case['staged']} staged, {len(case['rejects'])} rejects"
        try:
            result = stage_export(str(source), model, work / case["name"])
            with open(result.rejects_path, encoding="utf-8") as rejects:
                got = f"{result.rows_staged} staged, {sum(1 for _ in rejects) - 1} rejects"
            ok = "error" not in case and got == expected
        except ExportFileError as exc:
            got = exc.problem
            ok = "error" in case and case["error"] in exc.problem
        rows.append((case["name"], expected, got, ok))
    return rows


def write_report(out: Path, sample: Path, corpus: Path, *, soak_rows: int = 3000, soak_days: int = 8) -> bool:
    started = time.monotonic()
    work = temporary_work()
    days = sorted(p.stem.rsplit("_", 1)[1] for p in (sample / "contacts").glob("contacts_*.csv"))
    drills = run_drills(work / "drills", sample, days)
    soak = run_soak(work / "soak", rows=soak_rows, days=soak_days)
    corpus_results = corpus_rows(corpus, work / "corpus")
    elapsed = time.monotonic() - started
    ok = (
        all(d.ok for d in drills)
        and soak.rows_lost == 0
        and soak.duplicate_imports == 0
        and soak.ledgers_equal
        and soak.tables_equal
        and all(r[3] for r in corpus_results)
    )
    lines = [
        "# Reliability",
        "",
        f"Produced by `{COMMAND}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({platform.machine()}, "
        f"{elapsed:.0f} s). Every figure below comes from that run; re-run the command to refresh it.",
        "",
        "## Fault drills",
        "",
        "Each drill imports the sample's first day cleanly, injects one fault into the local MCE, runs the next day's "
        "contacts chain (export, staging, data extension) and, if that run stopped, removes the fault and runs again, "
        "as an engineer would; the remaining days follow. Then: the data extension must hold exactly what a fault-free "
        "run gives it, each content imported at most once, the ledger equal to MCE's imports, and no partial file under "
        "a final name in `/Import`.",
        "",
        "| fault | first run | runs | faults injected | rows checked | rows lost | duplicate imports | ledger = MCE | partial files |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for d in drills:
        first = d.first_run.replace("|", "/").replace("dagster._core.definitions.events.Failure: ", "")
        lines.append(
            f"| {d.name} | {first} | {d.runs} | {d.faults_injected} | {d.rows_checked} | {d.rows_lost} | "
            f"{d.duplicate_imports} | {'yes' if d.ledger_matches_mce else 'NO'} | {d.partial_files} |"
        )
    lines += [
        "",
        "A first run that `completed` absorbed the fault within the run (client retries with backoff, token refresh, "
        "Dagster's retry policy). The others stopped with a typed error naming the cause and completed on the next run; "
        "an import MCE had started before the connection dropped was found (by its import definition, one per content "
        "hash) and finished, not started again. Rows MCE refused (the refused-rows drill) are reported with MCE's "
        "counts and fail the blocking reconcile check; they are not counted as lost.",
        "",
        "## Fault soak",
        "",
        f"{soak.days} daily partitions of a generated CRM ({soak_rows} contacts, four datasets, each day's chain and "
        "DuckDB load), run against a local MCE injecting random faults at a seeded rate, each partition re-run until it "
        "ended as the fault-free run did; then compared with a fault-free run of the same data on another local MCE.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| runs | {soak.runs} (fault-free: {soak.days}) |",
        f"| faults injected | {sum(soak.faults_injected.values())} |",
        f"| rows checked (all data extensions) | {soak.rows_checked} |",
        f"| rows lost | {soak.rows_lost} |",
        f"| duplicate imports | {soak.duplicate_imports} |",
        f"| import ledgers equal | {'yes' if soak.ledgers_equal else 'NO'} |",
        f"| DuckDB tables equal | {'yes' if soak.tables_equal else 'NO'} |",
        "",
        "Faults injected, by kind:",
        "",
        *[f"- {kind}: {count}" for kind, count in sorted(soak.faults_injected.items())],
        "",
        "## Bad-input corpus",
        "",
        f"{len(corpus_results)} files in `nto_etl_tests/corpus/` (written by `scripts/make_bad_input_corpus.py`, "
        "expectations in its `manifest.json`). A file that cannot be read stages nothing and never reaches MCE "
        "(`test_bad_input_corpus.py` runs the unreadable ones through the asset graph to prove it).",
        "",
        "| file | expected | got | as expected |",
        "| --- | --- | --- | --- |",
        *[f"| {name} | {exp} | {got} | {'yes' if ok else 'NO'} |" for name, exp, got, ok in corpus_results],
        "",
        "## Security",
        "",
        "- Secrets come only from the environment (Dagster `EnvVar`s) and are held in `Secret`, which never prints its "
        "value; zeep's DEBUG envelope logs are redacted (`nto_etl.mce.redact`). `test_security.py` runs the pipeline "
        "with DEBUG logging and scans the logs, the Dagster events and the metadata for the client secret, the SFTP "
        "and legacy passwords and every issued token.",
        "- TLS verification and SSH host-key checking are on by default and off only by explicit configuration "
        "(`NTO_MCE_VERIFY_TLS=false`, `NTO_SFTP_CHECK_HOST_KEY=false`); the local MCE itself is checked against the "
        "known_hosts file it writes.",
        "- The local MCE binds loopback addresses only and refuses any call without a valid token or password.",
        "- SQL built from configuration quotes identifiers and validates values (the region code); values from files "
        "and requests are always bound parameters.",
        "",
        f"Overall: {'all checks held' if ok else 'SOME CHECKS FAILED'}.",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
    return ok
