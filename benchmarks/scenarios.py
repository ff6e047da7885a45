"""One benchmark scenario per process: `python -m benchmarks.scenarios NAME --scale S --work DIR` prints one JSON line."""

from __future__ import annotations

import argparse
import csv
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
import numpy as np
import pyarrow as arrow
from duckdb.func import PythonUDFType

from nto_etl import openssh, staging, transfer
from nto_etl import sync as sync_module
from nto_etl.config import default_config
from nto_etl.connections import local_settings
from nto_etl.contracts import Contact, de_fields
from nto_etl.generate import generate
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import imports
from nto_etl.mce.client import MceClient, parse_retrieve_page
from nto_etl.mce_local import LocalMce
from nto_etl.sql import csv_as_text
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


def change_only_first_pass(previous: Path, today: Path) -> tuple[float, float, int]:
    """The first step of a change-only staging (prototyped with a stored table, not kept:
    docs/CHANGE_ONLY_STAGING.md), timed without storing any row (best of three).

    A query's result keeps the file's order (DuckDB's preserve_insertion_order, a projection
    without joins), so its position in the result is a row's position in the file. Returns
    (seconds of fetching each row's fingerprints, key hash and line-break flag alone; seconds
    of the same pass looking each row up among `previous`'s fingerprints and fetching only the
    rows not found; rows not found)."""
    names = [f.name for f in de_fields(Contact)]
    values = ", ".join(names)
    # Two fingerprints of the raw values, in both column orders, as the prototype's index kept.
    fingerprints = f"hash({values}) AS fp1, hash({', '.join(reversed(names))}) AS fp2"
    per_row = f"hash(subscriber_key) AS key_hash, contains(concat({values}), chr(10)) AS breaks"
    with duckdb.connect() as con:
        con.execute(f"SET memory_limit = '{staging.STAGING_MEMORY}'")
        known = con.execute(f"SELECT {fingerprints} FROM {csv_as_text(previous, names)}").fetchnumpy()
        order = np.argsort(known["fp1"])
        first, second = known["fp1"][order], known["fp2"][order]

        def found(fp1: arrow.Array, fp2: arrow.Array) -> arrow.Array:
            one, two = fp1.to_numpy(), fp2.to_numpy()
            at = np.searchsorted(first, one).clip(max=len(first) - 1)
            return arrow.array((first[at] == one) & (second[at] == two))

        con.create_function("found", found, ["ubigint", "ubigint"], "boolean", type=PythonUDFType.ARROW)
        rows = f"SELECT *, {fingerprints} FROM {csv_as_text(today, names)}"
        kept = ", ".join(f"CASE WHEN NOT __found THEN {name} END AS {name}" for name in names)
        looked_up = f"SELECT fp1, {per_row}, __found, {kept} FROM (SELECT *, found(fp1, fp2) AS __found FROM ({rows}))"

        def fingerprints_alone() -> np.ndarray:
            return con.execute(f"SELECT fp1, fp2, {per_row} FROM ({rows})").fetchnumpy()["key_hash"]

        def with_lookup() -> int:
            not_found = 0
            for batch in con.sql(looked_up).to_arrow_reader(100_000):
                positions = np.flatnonzero(~batch.column("__found").to_numpy(zero_copy_only=False))
                not_found += len(batch.take(positions).select(names))
            return not_found

        alone_runs = [timed(fingerprints_alone, settle=False) for _ in range(3)]
        runs = [timed(with_lookup, settle=False) for _ in range(3)]
        # Untimed: the result's order is the file's, row for row, as Python's csv module reads it.
        with today.open(newline="", encoding="utf-8") as handle:
            records = csv.DictReader(handle)
            keys = [record["subscriber_key"] or None for record in records]
        in_file_order = con.execute(
            "SELECT hash(unnest($keys::VARCHAR[])) AS h", {"keys": keys}
        ).fetchnumpy()["h"]
        if not all(np.array_equal(key_hashes, in_file_order) for _, key_hashes in alone_runs):
            raise AssertionError("DuckDB's result did not keep the file's order")
    seconds, not_found = min(runs, key=lambda run: run[0])
    return min(spent for spent, _ in alone_runs), seconds, not_found


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
            "five of them regular expressions, about 0.4 s; counting line breaks inside values for the "
            "rejects' line numbers, 0.13-0.2 s; and, on a thread of its own, the SHA-256 of the export for "
            "its provenance (0.14 s) and its line feeds, which check those line numbers against blank lines "
            "(0.09 s). "
        )
        + "Tried and measured by hand on this machine on 1M rows, slower than keeping the rows in memory: "
        "streaming the screened rows straight to the CSV writer (a pre-pass for repeated keys first) took "
        "2.1-2.4 s before pandera's rows and line numbers; a streaming engine on Polars 2.1, built in full "
        "and then removed, took 3.0-3.5 s for the same bytes, because Polars' CSV reader fills a row with "
        "too few fields with nulls instead of refusing it (pola-rs/polars#521), so DuckDB's strict reader "
        "had to read the file first; pyarrow's streaming reader with DuckDB screening each chunk took "
        "2.8-4.0 s; counting line breaks after the read instead of during it, with pyarrow (0.3 s) or "
        "DuckDB (0.12-0.16 s), saved nothing. Skipping the count when the file's line feeds show that no "
        "value holds one saves 0.1-0.2 s, but only on such files: the benchmark's exports, like real ones, "
        "have multi-line streets. Not kept.",
    }


def scenario_sync(scale: float, work: Path) -> dict[str, Any]:
    first, second = contacts(work, int(1_000_000 * scale), days=2)
    baseline = min(duckdb_copy_baseline(first, work) for _ in range(3))  # as scenario 1: the best of several
    export = default_config().export("contacts")
    # The warehouse opened for each step of the sync, as the pipeline's asset does.
    connect = partial(warehouse.connect, work / "warehouse.duckdb")
    with local_mce_process(work / "mce") as info:
        client = MceClient(local_settings(info)[0])
        with transfer.sftp_session(local_settings(info)[1]) as fs:
            staged = stage_export(str(first), Contact, work / "staged")
            full = sync_partition(client, fs, connect, export, staged.staged_path, "2026-11-01", work / "up")

            # The CRM's full export the next day: every contact, the day's changes and new ones included.
            full_export = work / "contacts_full_2026-11-02.csv"
            with duckdb.connect() as db:
                db.execute(
                    f"COPY (SELECT * FROM read_csv('{second}', all_varchar = true) UNION ALL "
                    f"SELECT * FROM read_csv('{first}', all_varchar = true) WHERE subscriber_key NOT IN "
                    f"(SELECT subscriber_key FROM read_csv('{second}', all_varchar = true) "
                    f"WHERE subscriber_key IS NOT NULL)) TO '{full_export}' (HEADER)"
                )

            staging_seconds = 0.0

            def day_two() -> Any:
                nonlocal staging_seconds
                staging_seconds, staged_two = timed(
                    lambda: stage_export(str(full_export), Contact, work / "staged"), settle=False
                )
                return sync_partition(
                    client, fs, connect, export, staged_two.staged_path, "2026-11-02", work / "up"
                )

            with phase_timers(SYNC_PHASES) as phases:
                seconds, outcome = timed(day_two)
    fingerprint_pass, first_pass, changed_rows = change_only_first_pass(first, full_export)
    ratio = seconds / baseline
    ours = seconds - phases["waiting for the import"]
    return {
        "rows": outcome.rows_staged,
        "seconds": seconds,
        "baseline_seconds": baseline,
        "ratio": ratio,
        "ratio_text": f"{ratio:.2f}x",
        "met": ratio <= 3.0,
        "notes": f"day 1 imported {full.rows_uploaded:,} rows ({full.bytes_uploaded / 1e6:.1f} MB); day 2's full export "
        f"of {outcome.rows_staged:,} rows uploaded only its {outcome.rows_uploaded:,} changed rows "
        f"({outcome.bytes_uploaded / 1e6:.2f} MB). Timed: staging day 2 {staging_seconds:.1f} s, "
        + ", ".join(f"{name} {spent:.1f} s" for name, spent in phases.items())
        + f", the rest (DE check, ledger) {seconds - staging_seconds - sum(phases.values()):.1f} s. Without the wait "
        f"for the local MCE's import (it upserts into a DE of {full.rows_uploaded:,} rows), the pipeline's own time is "
        f"{ours:.1f} s, "
        f"{ours / baseline:.2f}x. The local MCE runs in a process of its own, so the peak RSS is the pipeline's. "
        + (
            ""
            if ratio <= 3.0
            else f"Why the target is missed: staging the full export took {staging_seconds / baseline:.1f}x the baseline "
            f"by itself (see stage), the delta {phases['delta'] / baseline:.1f}x (it reads the staged file once more, "
            "hashing every row: MD5 of the row's text, so a change is found whatever column it is in, compared with "
            f"what MCE has as it reads) and the local MCE's import {phases['waiting for the import'] / baseline:.1f}x. "
            "Were staging at its own 2x target, the import alone would leave "
            f"{max(0.0, 1 - phases['waiting for the import'] / baseline):.1f}x for the delta, the upload and the ledger. "
            "What would close it: not staging again what an earlier staging staged. A prototype "
            "(docs/CHANGE_ONLY_STAGING.md) fingerprinted each row's raw values as read, looked them up in an "
            "index beside the earlier staged file and copied the found rows' lines from it. Its output was "
            "byte for byte right but day 2 was no faster: it stored every row in a table in file order (the "
            "found ones as key and modified time), and storing rows in file order was then most of staging's "
            "cost (full staging now keeps them in memory as Arrow: see stage). File order does not need a "
            "table, since a query's result keeps it. Measured in this run, storing "
            "no row: fetching each row's fingerprints, key hash and line-break flag in file order took "
            f"{fingerprint_pass:.2f} s ({fingerprint_pass / baseline:.1f}x); the same pass looking each row up "
            f"among day 1's fingerprints and fetching only the {changed_rows:,} rows not found took "
            f"{first_pass:.2f} s ({first_pass / baseline:.1f}x). With the import as measured here, that leaves "
            f"{max(0.0, 3 - (first_pass + phases['waiting for the import']) / baseline):.1f}x for what is not "
            "built: staging the rows not found, writing the staged file from runs of the earlier one (and its "
            "index), a delta that compares fingerprints instead of hashing every staged row again (a change "
            "to row_hashes), the upload and the ledger."
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

    def copy(attempt: int) -> None:
        # Opened and closed inside the timing, as the merge is: closing writes the checkpoint.
        with duckdb.connect(str(work / f"raw{attempt}.duckdb")) as con:
            con.execute(f"CREATE TABLE raw AS SELECT * FROM read_csv('{events}')")

    def merge(attempt: int) -> Any:
        with warehouse.connect(work / f"warehouse{attempt}.duckdb") as con:
            return merge_event_files(con, [EventFile(events)], "2026-11-01")

    # Best of three for both, taking turns, each into a new database file; then the same file
    # merged again.
    copies, merges = [], []
    for attempt in range(3):
        copies.append(timed(partial(copy, attempt))[0])
        merges.append(timed(partial(merge, attempt)))
    baseline = min(copies)
    seconds, first = min(merges, key=lambda run: run[0])
    again, second = timed(lambda: merge(2))

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
    beside, third = timed(lambda: merge(2))
    ratio = seconds / baseline
    limit = warehouse.warehouse_config()["memory_limit"]
    return {
        "rows": rows,
        "seconds": seconds,
        "baseline_seconds": baseline,
        "ratio": ratio,
        "ratio_text": f"{ratio:.2f}x",
        "met": ratio <= 1.5,
        "notes": f"Best of three: {first.new:,} events inserted ({first.path} merge); merging the same file again "
        f"took {again:.1f} s ({again / baseline:.2f}x, {second.path} merge) and inserted {second.new:,}; with the next "
        f"day's {rows:,} events in the warehouse too, {beside:.1f} s ({beside / baseline:.2f}x), inserting {third.new:,}. "
        "A partition's first merge inserts while DuckDB reads the file, every row screened with the "
        "TrackingEvent contract's rules as SQL (a row the screen does not pass stops it, and the screened merge "
        "takes over); then it checks that no natural key repeats (numpy sorts the events' key hashes: no two "
        "alike) and removes events "
        "another partition already has. A partition merged again goes the screened way: the file into a "
        "temporary table (pandera judges the rows the screen does not pass), an anti-join per event type on the "
        "natural key against the events already there, and the insert of what is left, in one transaction. "
        f"The warehouse runs with the pipeline's DuckDB memory limit ({limit}, spilling beyond), the baseline "
        "without one. "
        + (
            ""
            if ratio <= 1.5
            else "Why the target is missed: reading the file while screening it and writing it into the "
            "warehouse's compressed storage cost about the baseline; the check that no key repeats (hashing "
            "every event's five key columns, read back from the table, and sorting the hashes) is most of the "
            "rest. What would close it: keeping each event's key hash as a column of the table (a hash stable "
            "across DuckDB versions, such as MD5, since stored), so that the check reads one integer column "
            "instead of five."
        ),
    }


def scenario_retrieve(scale: float, work: Path) -> dict[str, Any]:
    with LocalMce(work / "mce") as mce:
        mce_settings, sftp_settings = local_settings(mce.info)
        client = MceClient(mce_settings)
        fields = tuple(dex.DEField(f"Field{i}", "Text", 40, is_primary_key=i == 0) for i in range(10))
        dex.create_data_extension(client, dex.DataExtensionSpec("Bench", "Bench", fields))
        source = work / "rows.csv"
        source.write_text(
            "\n".join(
                [",".join(f.name for f in fields)]
                + [",".join(f"value-{r}-{c}" for c in range(10)) for r in range(2500)]
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
    assert len(parse_retrieve_page(raw)[2]) == 2500
    ratio = zeep_seconds / fast_seconds
    return {
        "rows": 2500,
        "seconds": fast_seconds,
        "baseline_seconds": zeep_seconds,
        "ratio": ratio,
        "ratio_text": f"{ratio:.0f}x faster",
        "met": ratio >= 10,
        "notes": f"one page of 2,500 rows x 10 properties ({len(raw) / 1e6:.1f} MB of XML); zeep {zeep_seconds:.3f} s, "
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
