"""One benchmark scenario per process: `python -m benchmarks.scenarios NAME --scale S --work DIR` prints one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb

from nto_etl import openssh, staging, transfer
from nto_etl import sync as sync_module
from nto_etl.config import default_config
from nto_etl.connections import local_settings
from nto_etl.contracts import Contact
from nto_etl.delta import known_fingerprints
from nto_etl.fingerprints import Fingerprints
from nto_etl.generate import generate
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import imports
from nto_etl.mce.client import RETRIEVE_PAGE_SIZE, MceClient, parse_retrieve_page
from nto_etl.mce_local import LocalMce
from nto_etl.staging import stage_export
from nto_etl.sync import sync_partition
from nto_etl.warehouse import connection as warehouse


def timed(fn: Callable[[], Any], *, settle: bool = True) -> tuple[float, Any]:
    """Wall time of `fn`, started (with `settle`) once the files written before are on disk:
    otherwise the kernel flushing the previous run's hundreds of megabytes lands in this one's time."""
    if settle:
        os.sync()
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def duckdb_copy_baseline(source: Path, work: Path) -> float:
    """The floor for staging: DuckDB reads the CSV as text and writes it back out."""
    out = work / "baseline_copy.csv"
    with duckdb.connect() as con:
        seconds, _ = timed(
            lambda: con.execute(
                f"COPY (SELECT * FROM read_csv('{source}', all_varchar = true)) TO '{out}' (HEADER)"
            )
        )
    return seconds


STEADY_DAYS = 3  # steady-state days timed after the two that set the sync up
SYNC_PHASES = [
    (sync_module, "prepare_delta", "delta"),
    (sync_module.transfer, "upload_atomic", "upload"),
    (sync_module.imports, "wait_for_import", "waiting for the import"),
]
# validate_chunk runs inside _stage_screened: the screening's own time is the difference.
STAGE_PHASES = [
    (staging, "_stage_screened", "screening"),
    (staging, "validate_chunk", "pandera"),
    (staging, "_resolve_duplicates", "ranking repeated keys"),
    (staging, "_write_staged", "writing the staged file"),
]


@contextmanager
def phase_timers(wrapped: list[tuple[Any, str, str]]) -> Iterator[dict[str, float]]:
    """Time a run's phases by wrapping the functions it calls, as (module, function, phase name)
    (benchmark only); yields the seconds spent in each phase."""
    phases: dict[str, float] = {}
    originals = [getattr(owner, attr) for owner, attr, _ in wrapped]

    def timer(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - started

        return run

    for (owner, attr, name), original in zip(wrapped, originals, strict=True):
        setattr(owner, attr, timer(original, name))
        phases[name] = 0.0
    try:
        yield phases
    finally:
        for (owner, attr, _), original in zip(wrapped, originals, strict=True):
            setattr(owner, attr, original)


@contextmanager
def local_mce_process(state_dir: Path) -> Iterator[dict[str, Any]]:
    """The local MCE in a process of its own, as a real MCE is elsewhere: its DE's storage and
    threads are not the pipeline's. Yields its connection info."""
    server = subprocess.Popen(
        [sys.executable, "-m", "nto_etl.cli", "mce-local", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield json.loads(server.stdout.readline())
    finally:
        server.terminate()
        server.wait(timeout=60)


def contacts(work: Path, rows: int, days: int = 1) -> list[Path]:
    generate(rows, 42, work / "crm", date(2026, 11, 1), days, only={"contacts"}, progress=False)
    return sorted((work / "crm" / "crm" / "contacts").glob("contacts_*.csv"))


def duckdb_read_alone(source: Path) -> float:
    """The baseline's first half: DuckDB reading the CSV as text, every value materialized."""
    with duckdb.connect() as con:
        query = f"SELECT sum(len(concat(*COLUMNS(*)))) FROM read_csv('{source}', all_varchar = true)"
        seconds, _ = timed(lambda: con.execute(query).fetchall())
    return seconds


def scenario_stage(scale: float, work: Path) -> dict[str, Any]:
    [source] = contacts(work, int(1_000_000 * scale))
    # Best of five for both, alternating: a single run varies by 20% on a shared machine. Each of
    # our runs times its phases, and the best run's are reported.
    baselines, reads, runs, in_table = [], [], [], []
    for attempt in range(5):
        baselines.append(duckdb_copy_baseline(source, work))
        reads.append(duckdb_read_alone(source))
        with phase_timers(STAGE_PHASES) as phases:
            seconds, staged = timed(lambda: stage_export(str(source), Contact, work / "staged"))
        runs.append((seconds, staged, dict(phases)))
        if attempt < 3:  # the rows kept in a DuckDB table, as for an export beyond the memory budget
            with mock.patch.object(staging, "_in_memory", return_value=False):
                in_table.append(timed(lambda: stage_export(str(source), Contact, work / "staged"))[0])
    # As a staging after the data extension's first import does: every row fingerprinted.
    fingerprinting = min(
        timed(lambda: stage_export(str(source), Contact, work / "staged", known=Fingerprints.from_array([])))[
            0
        ]
        for _ in range(3)
    )
    baseline, read = min(baselines), min(reads)
    seconds, result, spent = min(runs, key=lambda run: run[0])
    screening = spent["screening"] - spent["pandera"]
    rest = seconds - sum(spent.values()) + spent["pandera"]
    ratio = seconds / baseline
    table = min(in_table)
    return {
        "rows": result.rows_read,
        "seconds": seconds,
        "baseline_seconds": baseline,
        "ratio": ratio,
        "ratio_text": f"{ratio:.2f}x",
        "met": ratio <= 2.0,
        "notes": f"Best of five: {result.rows_staged:,} staged, {result.rows_rejected:,} rejected, {result.duplicates_superseded:,} "
        f"duplicate keys resolved; the SQL screen passed {result.rows_read - result.rows_via_pandera:,} rows, pandera "
        f"judged the other {result.rows_via_pandera:,} (engine: {result.engine}). Where that run's time went: "
        f"reading the file, screening every row with the contract's 24 rules and keeping the rows in file order "
        f"{screening:.2f} s; pandera judging the rows the screen refused {spent['pandera']:.2f} s; ranking repeated "
        f"keys {spent['ranking repeated keys']:.2f} s; writing the staged file {spent['writing the staged file']:.2f} s; "
        f"the rest (header, rejects file, counts) {rest:.2f} s. The baseline only reads and writes: DuckDB reading "
        f"the same file alone, every value materialized, took {read:.2f} s (best of five), so its COPY about "
        f"{baseline - read:.2f} s. "
        + (
            f"The export fits in staging's memory budget ({staging.STAGING_MEMORY}), so the screened rows were "
            f"kept in memory as Arrow; kept in a DuckDB table instead, as for a larger export, staging took "
            f"{table:.2f} s ({table / baseline:.2f}x, best of three): inserting the rows into a table in "
            "file order is what costs, not the reading. "
            if staging._in_memory(source.stat().st_size)
            else f"The export is larger than staging's memory budget ({staging.STAGING_MEMORY}), so the "
            f"screened rows were kept in a DuckDB table, which spills to disk. "
        )
        + (
            ""
            if ratio <= 2.0
            else "Why the target is missed: it is at the line, and the runs vary by 10%. On top of the reading "
            "and writing the baseline does, on the same two cores, come (measured by hand) the 24 rules, "
            "five of them regular expressions, about 0.4 s (0.7 CPU seconds); and, on a thread of its own "
            "started once DuckDB has read the file, the SHA-256 of the export for its provenance (0.12 s) and "
            "its line feeds, which check those line numbers against blank lines (0.05 s). "
        )
        + f"This is a first staging. Once MCE holds the data extension's rows, a staging also fingerprints "
        f"every row, so that the next day skips the rows MCE holds (see sync): {fingerprinting:.2f} s "
        f"({fingerprinting / baseline:.2f}x, best of three) when no row is skipped. "
        + "Tried and measured by hand on this machine on 1M rows, slower than keeping the rows in memory: "
        "streaming the screened rows straight to the CSV writer (a pre-pass for repeated keys first) took "
        "2.1-2.4 s before pandera's rows and line numbers; a streaming engine on Polars 2.1, built in full "
        "and then removed, took 3.0-3.5 s for the same bytes, because Polars' CSV reader fills a row with "
        "too few fields with nulls instead of refusing it (pola-rs/polars#521), so DuckDB's strict reader "
        "had to read the file first; pyarrow's streaming reader with DuckDB screening each chunk took "
        "2.8-4.0 s; counting line breaks after the read with pyarrow's count_substring (0.5 s) or "
        "DuckDB (0.12-0.16 s) saved nothing; searching the kept columns' bytes for line feeds (0.05 s), "
        "as staging now does when it keeps the rows in memory, saves about 0.3 s against counting them "
        "per row as DuckDB reads. Skipping the count when the file's line feeds show that no "
        "value holds one saves 0.1-0.2 s, but only on such files: the benchmark's exports, like real ones, "
        "have multi-line streets. Not kept.",
    }


def full_export(work: Path, day: Path, previous: Path) -> Path:
    """The CRM's full export of a day: the day's changes and new rows, and every other row of
    the day before's full export."""
    out = work / f"full_{day.name}"
    with duckdb.connect() as db:
        db.execute(
            f"COPY (SELECT * FROM read_csv('{day}', all_varchar = true) UNION ALL "
            f"SELECT * FROM read_csv('{previous}', all_varchar = true) WHERE subscriber_key NOT IN "
            f"(SELECT subscriber_key FROM read_csv('{day}', all_varchar = true) "
            f"WHERE subscriber_key IS NOT NULL)) TO '{out}' (HEADER)"
        )
    return out


def scenario_sync(scale: float, work: Path) -> dict[str, Any]:
    first, *changes = contacts(work, int(1_000_000 * scale), days=2 + STEADY_DAYS)
    baseline = min(duckdb_copy_baseline(first, work) for _ in range(3))  # as scenario 1: the best of several
    export = default_config().export("contacts")
    # The warehouse opened for each step, as the pipeline's assets do.
    connect = partial(warehouse.connect, work / "warehouse.duckdb")
    exports = [first]
    for change in changes:
        exports.append(full_export(work, change, exports[-1]))
    day_two, *steady_days = exports[1:]
    with local_mce_process(work / "mce") as info:
        client = MceClient(local_settings(info)[0])
        with transfer.sftp_session(local_settings(info)[1]) as fs:
            staging_seconds = 0.0
            skipped = 0

            def day(source: Path, partition: str) -> Any:
                """The staging asset's work, then the data extension's."""
                nonlocal staging_seconds, skipped

                def stage() -> Any:
                    with connect() as con:
                        known = known_fingerprints(con, export.de_key, partition)
                    return stage_export(
                        str(source), Contact, work / "staged", name=f"contacts_{partition}", known=known
                    )

                staging_seconds, staged = timed(stage, settle=False)
                skipped = staged.rows_known
                return sync_partition(client, fs, connect, export, staged.staged_path, partition, work / "up")

            full = day(first, "2026-11-01")
            # The day after the first import: every row fingerprinted, none skipped yet.
            with phase_timers(SYNC_PHASES) as first_phases:
                fingerprinting, second_day = timed(lambda: day(day_two, "2026-11-02"))
            fingerprinting_staging = staging_seconds
            # Steady-state days, each its own partition with its own changes: the best of them.
            steady = []
            for n, export_file in enumerate(steady_days, start=3):
                with phase_timers(SYNC_PHASES) as phases:
                    spent, outcome = timed(partial(day, export_file, f"2026-11-{n:02d}"))
                steady.append((spent, outcome, staging_seconds, skipped, dict(phases)))
    seconds, outcome, staging_seconds, skipped, phases = min(steady, key=lambda run: run[0])
    ratio = seconds / baseline
    ours = seconds - phases["waiting for the import"]
    rest = seconds - staging_seconds - sum(phases.values())
    return {
        "rows": outcome.rows_staged + skipped,
        "seconds": seconds,
        "baseline_seconds": baseline,
        "ratio": ratio,
        "ratio_text": f"{ratio:.2f}x",
        "met": ratio <= 3.0,
        "rows_skipped": skipped,
        "rows_uploaded": outcome.rows_uploaded,
        "notes": f"Day 1 imported {full.rows_uploaded:,} rows ({full.bytes_uploaded / 1e6:.1f} MB). Timed: days 3 to "
        f"{2 + STEADY_DAYS}, each a steady-state day with its own changes, the best of them reported "
        f"({', '.join(f'{run[0]:.1f} s' for run in steady)}; {max(run[0] for run in steady) / baseline:.2f}x at worst). "
        f"The best day's full export of {outcome.rows_staged + skipped:,} rows uploaded only its "
        f"{outcome.rows_uploaded:,} changed rows ({outcome.bytes_uploaded / 1e6:.2f} MB). Its staging skipped the {skipped:,} rows MCE held exactly "
        f"as an earlier day staged them (their raw fingerprints, recorded by the delta: nto_etl/fingerprints.py) "
        f"and staged {outcome.rows_staged:,}: {staging_seconds:.1f} s ({staging_seconds / baseline:.2f}x), reading "
        "the fingerprints from the warehouse included. Then "
        + ", ".join(f"{name} {spent:.1f} s" for name, spent in phases.items())
        + f", the rest (DE check, ledger) {rest:.1f} s. Without the wait for the local MCE's import (it upserts into "
        f"a DE of {full.rows_uploaded:,} rows) the pipeline's own time is {ours:.1f} s, {ours / baseline:.2f}x. "
        f"Day 2, the first day after the first import, stages every row and records their fingerprints: "
        f"{fingerprinting:.1f} s ({fingerprinting / baseline:.2f}x), of which staging {fingerprinting_staging:.1f} s "
        f"({fingerprinting_staging / baseline:.2f}x), "
        + ", ".join(f"{name} {spent:.1f} s" for name, spent in first_phases.items())
        + f" (the delta records the fingerprints of the rows MCE held already); it uploaded "
        f"{second_day.rows_uploaded:,} rows. "
        "The local MCE runs in a process of its own, so the peak RSS is the pipeline's. "
        + (
            ""
            if ratio <= 3.0
            else f"Why the target is missed, by {ratio - 3:.2f}x: staging that skips 97% of the rows still reads "
            "every row, fingerprints it, counts its line breaks (the rejects' line numbers) and looks it up "
            "through a Python function DuckDB calls per 2,048 rows (about 0.3 s more than a native expression; "
            "no native form kept the file's order); the local MCE's import of the changed rows took "
            f"{phases['waiting for the import'] / baseline:.2f}x; and the warehouse, opened for the delta and "
            f"each ledger write so that other steps are not locked out while MCE imports, {rest / baseline:.2f}x "
            "with the DE check. What would close it: a lookup native to DuckDB that keeps the file's order, "
            "and fewer warehouse sessions (docs/CHANGE_ONLY_STAGING.md)."
        ),
    }


def scenario_tracking(scale: float, work: Path) -> dict[str, Any]:
    from nto_etl.warehouse.tracking import EventFile, merge_event_files

    rows = int(10_000_000 * scale)
    events = work / "events.csv"
    work.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT 90000 + (i % 20) AS send_id, 'NTO-C' || lpad(CAST(i // 7 AS VARCHAR), 9, '0') AS subscriber_key,
            ['Sent','Open','Click','HardBounce','SoftBounce','Unsubscribe','Open'][1 + i % 7] AS event_type,
            TIMESTAMP '2026-11-01' + to_seconds(i % 86400) AS event_date,
            CASE WHEN i % 7 = 2 THEN 'https://www.nto.example/p' || (i % 50) END AS url,
            CASE WHEN i % 7 IN (3, 4) THEN 'Hard bounce' END AS bounce_category,
            CASE WHEN i % 7 IN (3, 4) THEN '550' END AS smtp_code, 1 AS batch_id
            FROM range({rows}) t(i)) TO '{events}' (HEADER)""")

    def copy(attempt: int, ordered: bool = True) -> None:
        # Opened and closed inside the timing, as the merge is: closing writes the checkpoint.
        config: warehouse.Config = {} if ordered else {"preserve_insertion_order": False}
        with duckdb.connect(str(work / f"raw{attempt}{'' if ordered else 'u'}.duckdb"), config=config) as con:
            con.execute(f"CREATE TABLE raw AS SELECT * FROM read_csv('{events}')")

    def merge(attempt: int, compare_again: bool = False) -> Any:
        with warehouse.connect(work / f"warehouse{attempt}.duckdb") as con:
            return merge_event_files(con, [EventFile(events)], "2026-11-01", compare_again=compare_again)

    # Best of three for both, taking turns, each into a new database file; then the same file
    # merged again.
    copies, unordered, merges = [], [], []
    for attempt in range(3):
        copies.append(timed(partial(copy, attempt))[0])
        unordered.append(timed(partial(copy, attempt, ordered=False))[0])
        merges.append(timed(partial(merge, attempt)))
    baseline, baseline_unordered = min(copies), min(unordered)
    seconds, first = min(merges, key=lambda run: run[0])
    again, second = timed(lambda: merge(2))  # the same file: recognised, not read
    compared, second_compared = timed(lambda: merge(2, compare_again=True))

    # The same re-merge beside another day's events, as a warehouse holding history has them: only
    # the events dated within the incoming ones' range are compared.
    next_day = work / "events_next_day.csv"
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * REPLACE (event_date + INTERVAL 1 DAY AS event_date) FROM read_csv('{events}')) "
            f"TO '{next_day}' (HEADER)"
        )
    with warehouse.connect(work / "warehouse2.duckdb") as con:
        merge_event_files(con, [EventFile(next_day)], "2026-11-02")
    beside, third = timed(lambda: merge(2, compare_again=True))
    ratio = seconds / baseline
    limit = warehouse.warehouse_config()["memory_limit"]
    return {
        "rows": rows,
        "seconds": seconds,
        "baseline_seconds": baseline,
        "ratio": ratio,
        "ratio_text": f"{ratio:.2f}x",
        "met": ratio <= 1.5,
        "merged_again": {"seconds": again, "path": second.path, "new": second.new},
        "compared_again": {"seconds": compared, "path": second_compared.path, "new": second_compared.new},
        "notes": f"Best of three: {first.new:,} events inserted ({first.path} merge), the file's SHA-256 computed "
        f"beside it. Merging the same file again took {again:.2f} s ({again / seconds:.2f}x the first merge; "
        f"{second.path} merge: the partition was last "
        "merged from this file, read the same way, and holds the events it held then, so every one of them is there; "
        f"nothing is read) and inserted {second.new:,}. Compared event by event all the same (compare_again), "
        f"{compared:.1f} s ({compared / baseline:.2f}x, {compared / seconds:.2f}x the first merge, "
        f"{second_compared.path} merge), inserting "
        f"{second_compared.new:,}; with the next day's {rows:,} events in the warehouse too, {beside:.1f} s "
        f"({beside / baseline:.2f}x), inserting {third.new:,}. "
        "A partition's first merge inserts while DuckDB reads the file, every row screened with the "
        "TrackingEvent contract's rules as SQL (a row the screen does not pass stops it, and the screened merge "
        "takes over); then it checks that no natural key repeats (numpy sorts the events' key hashes: no two "
        "alike) and removes events "
        "another partition already has. A partition merged again from other files (late events) goes the "
        "screened way: the file into a temporary table (pandera judges the rows the screen does not pass), an "
        "anti-join per event type on the natural key against the events already there, and the insert of what is "
        "left, in one transaction. "
        f"The warehouse runs with the pipeline's DuckDB memory limit ({limit}, spilling beyond), the baseline "
        "without one. The merge inserts without keeping insertion order (events have none), so DuckDB writes "
        "compressed row groups as it goes and the checkpoint has nothing left to do; the baseline is a raw "
        "COPY with DuckDB's defaults, as the target says. A raw COPY without insertion order too took "
        f"{baseline_unordered:.2f} s: against that, the merge is {seconds / baseline_unordered:.2f}x. "
        + (
            ""
            if ratio <= 1.5
            else "Why the target is missed: the merge reads every value as text and screens it with the "
            "contract's rules before casting, where the baseline reads typed values; that is most of the "
            "difference, and the check that no key repeats (about 0.5 s for 10M events) the rest. What would "
            "close it: fewer rules per value, which the contract does not allow without weakening it."
        ),
    }


def scenario_retrieve(scale: float, work: Path) -> dict[str, Any]:
    # A full page is MCE's 2,500 rows; smaller scales (the test suite's) parse a smaller page.
    rows = max(100, min(RETRIEVE_PAGE_SIZE, round(RETRIEVE_PAGE_SIZE * scale)))
    with LocalMce(work / "mce") as mce:
        mce_settings, sftp_settings = local_settings(mce.info)
        client = MceClient(mce_settings)
        fields = tuple(dex.DEField(f"Field{i}", "Text", 40, is_primary_key=i == 0) for i in range(10))
        dex.create_data_extension(client, dex.DataExtensionSpec("Bench", "Bench", fields))
        source = work / "rows.csv"
        source.write_text(
            "\n".join(
                [",".join(f.name for f in fields)]
                + [",".join(f"value-{r}-{c}" for c in range(10)) for r in range(rows)]
            )
            + "\n"
        )
        with transfer.sftp_session(sftp_settings) as fs:
            transfer.upload_atomic(fs, source, "/Import/bench.csv")
        imports.run_import(client, imports.ImportSpec("bench_imp", "Bench", "bench.csv"))
        raw = client.soap.call_raw(
            "Retrieve",
            idempotent=True,
            RetrieveRequest={
                "ObjectType": "DataExtensionObject[Bench]",
                "Properties": [f.name for f in fields],
            },
        )
    from lxml import etree

    zeep_client = client.soap.zeep
    element = zeep_client.get_element("{http://exacttarget.com/wsdl/partnerAPI}RetrieveResponseMsg")

    def with_zeep() -> Any:
        body = etree.fromstring(raw).find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
        assert body is not None
        return element.parse(body[0], zeep_client.wsdl.types)

    zeep_seconds = min(timed(with_zeep)[0] for _ in range(3))
    fast_seconds = min(timed(lambda: parse_retrieve_page(raw))[0] for _ in range(5))
    assert len(parse_retrieve_page(raw)[2]) == rows
    ratio = zeep_seconds / fast_seconds
    return {
        "rows": rows,
        "seconds": fast_seconds,
        "baseline_seconds": zeep_seconds,
        "ratio": ratio,
        "ratio_text": f"{ratio:.0f}x faster",
        "met": ratio >= 10,
        "notes": f"one page of {rows:,} rows x 10 properties ({len(raw) / 1e6:.1f} MB of XML); zeep {zeep_seconds:.3f} s, "
        f"lxml {fast_seconds:.3f} s. `retrieve_rows` uses the lxml path; a test holds it equal to zeep's.",
    }


def scenario_sftp(scale: float, work: Path) -> dict[str, Any]:
    import asyncssh

    size = int(100 * 1024 * 1024 * scale)
    work.mkdir(parents=True, exist_ok=True)
    payload = work / "payload.bin"
    payload.write_bytes(os.urandom(size))
    with LocalMce(work / "mce") as mce:
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(work / "id_ed25519"))
        (work / "id_ed25519").chmod(0o600)
        (Path(mce.info.state_dir) / "authorized_keys").write_bytes(key.export_public_key())
        _, settings = local_settings(mce.info)
        info = mce.info
        batch = work / "batch"

        def openssh_sftp(commands: str) -> float:
            batch.write_text(commands)
            seconds, _ = timed(
                lambda: subprocess.run(
                    [
                        "sftp",
                        "-q",
                        "-b",
                        str(batch),
                        "-i",
                        str(work / "id_ed25519"),
                        "-P",
                        str(info.sftp_port),
                        "-o",
                        f"UserKnownHostsFile={info.sftp_known_hosts}",
                        "-o",
                        "BatchMode=yes",
                        "-o",
                        "Ciphers=aes128-gcm@openssh.com",
                        f"{info.sftp_username}@{info.sftp_host}",
                    ],
                    check=False,
                    capture_output=True,
                )
            )
            return seconds

        with transfer.sftp_session(settings) as fs:
            # Best of five for ours and for OpenSSH alike, taking turns so that both see the same
            # moments of the machine: single transfers on loopback vary by 30%.
            ups, downs, ssh_ups, ssh_downs = [], [], [], []
            for _ in range(5):
                ups.append(timed(lambda: transfer.upload_atomic(fs, payload, "/Import/ours.bin"))[0])
                ssh_ups.append(openssh_sftp(f"put {payload} /Import/openssh.bin\n"))
                downs.append(
                    timed(lambda: transfer.download(fs, "/Import/ours.bin", work / "ours_back.bin"))[0]
                )
                ssh_downs.append(openssh_sftp(f"get /Import/openssh.bin {work / 'openssh_back.bin'}\n"))
            up, down, ssh_up, ssh_down = min(ups), min(downs), min(ssh_ups), min(ssh_downs)
            # The asyncssh path alone, for the record (what runs when OpenSSH is not installed).
            os.environ[openssh.ENABLE_VARIABLE] = "false"
            try:
                py_up, _ = timed(lambda: transfer.upload_atomic(fs, payload, "/Import/asyncssh.bin"))
                py_down, _ = timed(
                    lambda: transfer.download(fs, "/Import/asyncssh.bin", work / "py_back.bin")
                )
            finally:
                del os.environ[openssh.ENABLE_VARIABLE]
    mb = size / 1e6
    up_ratio, down_ratio = ssh_up / up, ssh_down / down
    return {
        "rows": size,
        "seconds": up + down,
        "baseline_seconds": ssh_up + ssh_down,
        "ratio": min(up_ratio, down_ratio),
        "ratio_text": f"up {up_ratio:.2f}x, down {down_ratio:.2f}x",
        "met": min(up_ratio, down_ratio) >= 0.8,
        "notes": f"{mb:.0f} MB, best of five each, taking turns: ours up {mb / up:.0f} MB/s, down {mb / down:.0f} MB/s; OpenSSH sftp up "
        f"{mb / ssh_up:.0f} MB/s, down {mb / ssh_down:.0f} MB/s. Ours hands files of 8 MiB and more to OpenSSH's "
        "sftp client when it is installed (nto_etl/openssh.py: same settings, host key checked, password through "
        "SSH_ASKPASS) and adds the atomic rename and the SHA-256 of the file, which the baseline does not do. "
        f"The asyncssh path (sshfs, 1 MiB requests), which runs without OpenSSH: up {mb / py_up:.0f} MB/s "
        f"({ssh_up / py_up:.2f}x), down {mb / py_down:.0f} MB/s ({ssh_down / py_down:.2f}x): asyncssh frames and "
        "encrypts every packet in Python on one core."
        + (
            ""
            if min(up_ratio, down_ratio) >= 0.8
            else " Why the target is missed: OpenSSH's client moves the bytes in both runs; ours then hashes "
            "the downloaded file (SHA-256, about 0.09 s for 105 MB here, which the asset's metadata records) "
            "and renames it, and single transfers on loopback vary by 30%. Hashing as the bytes arrive "
            "would need a client that writes in order (OpenSSH's may write a block before an earlier one, "
            "and asyncssh's is three times slower) or a checksum from the server, which MCE's SFTP does "
            "not document."
        ),
    }


def scenario_memory(scale: float, work: Path) -> dict[str, Any]:
    rows = int(10_000_000 * scale)
    [source] = contacts(work, rows)
    with local_mce_process(work / "mce") as info:
        mce_settings, sftp_settings = local_settings(info)
        client = MceClient(mce_settings)
        export = default_config().export("contacts")

        staging_peak = 0.0

        def run() -> Any:
            nonlocal staging_peak
            staged = stage_export(str(source), Contact, work / "staged")
            staging_peak = peak_rss_mb()
            with transfer.sftp_session(sftp_settings) as fs:
                return sync_partition(
                    client,
                    fs,
                    partial(warehouse.connect, work / "w.duckdb"),
                    export,
                    staged.staged_path,
                    "2026-11-01",
                    work / "up",
                    timeout=7200,
                )

        seconds, outcome = timed(run)
    peak = peak_rss_mb()
    return {
        "rows": rows,
        "seconds": seconds,
        "baseline_seconds": 0.0,
        "ratio": peak,
        "ratio_text": f"{peak:,.0f} MB",
        "met": peak <= 1536,
        "peak_rss_mb": peak,
        "notes": f"{outcome.rows_uploaded:,} rows staged and imported in {seconds / 60:.1f} min; peak RSS "
        f"{staging_peak:,.0f} MB after staging, {peak:,.0f} MB after the delta, upload and import (DuckDB "
        "memory limits: 512 MB staging, 1 GB warehouse; both spill to disk beyond). The local MCE ran in its "
        "own process, so the RSS is the pipeline's alone.",
    }


def scenario_rowwise(scale: float, work: Path) -> dict[str, Any]:
    rows = int(100_000 * scale)
    fields = (
        dex.DEField("Key", "Text", 20, is_primary_key=True),
        dex.DEField("Email", "EmailAddress"),
        dex.DEField("Name", "Text", 40),
    )
    data = [{"Key": f"K{i}", "Email": f"k{i}@example.com", "Name": f"Name {i}"} for i in range(rows)]
    work.mkdir(parents=True, exist_ok=True)
    with LocalMce(work / "mce") as mce:
        mce_settings, sftp_settings = local_settings(mce.info)
        client = MceClient(mce_settings)
        for key in ("ViaImport", "ViaSoap"):
            dex.create_data_extension(client, dex.DataExtensionSpec(key, key, fields))
        source = work / "rows.csv"
        source.write_text(
            "Key,Email,Name\n" + "".join(f"{r['Key']},{r['Email']},{r['Name']}\n" for r in data)
        )

        def via_import() -> Any:
            with transfer.sftp_session(sftp_settings) as fs:
                transfer.upload_atomic(fs, source, "/Import/rows.csv")
            return imports.run_import(client, imports.ImportSpec("rows_imp", "ViaImport", "rows.csv"))

        fast, result = timed(via_import)
        slow, outcome = timed(lambda: dex.upsert_rows(client, "ViaSoap", data))
    ratio = slow / fast
    return {
        "rows": rows,
        "seconds": fast,
        "baseline_seconds": slow,
        "ratio": ratio,
        "ratio_text": f"{ratio:.0f}x faster",
        "met": ratio >= 50,
        "notes": f"import: {result.successful:,} rows in {fast:.1f} s; SOAP upserts (50 a request, the documented "
        f"synchronous limit): {outcome.saved:,} rows in {slow:.1f} s.",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = globals()[f"scenario_{args.name}"](args.scale, work)
    result.setdefault("peak_rss_mb", peak_rss_mb())
    print(json.dumps({"name": args.name, **result}))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
