"""Delta imports: only rows that changed since the last successful import of a data extension.

A row's hash is taken over its staged text (the exact bytes MCE would receive), keyed
by its primary key, and kept in DuckDB once MCE has imported it without errors. Beside it
are kept the fingerprint of the raw row it was staged from (`raw_fp`, `nto_etl.fingerprints`),
when the staging wrote one, and the partition whose staged file held that row (`staged_in`):
a later day's staging skips the raw rows MCE holds. Only a later day's: the row stays in the
warehouse's table of that earlier partition, which a re-run of that day would otherwise empty.

Between the upload and the end of the import the hashes wait in `pending_row_hashes`, under
the content's hash, so the sync need not hold the warehouse open while MCE imports. A row
older (by the contract's modified column) than the one MCE has is stale and never sent:
backfilling an old day cannot undo a newer change.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as arrow

from nto_etl.csv_writer import write_csv
from nto_etl.fingerprints import Fingerprints
from nto_etl.mce.fields import DEField
from nto_etl.sql import ident, literal, scalar, transaction
from nto_etl.staging import STAGED_DATE_FORMAT

# No primary key: DuckDB keeps a key's index in memory, which for tens of millions of rows is
# more than the pipeline may use. record_delta keeps (de_key, row_key) unique itself.
DDL = """
CREATE TABLE IF NOT EXISTS row_hashes (
    de_key VARCHAR NOT NULL,
    row_key VARCHAR NOT NULL,
    row_hash VARCHAR NOT NULL,
    modified_at TIMESTAMP,
    raw_fp UBIGINT,
    staged_in VARCHAR
)
"""
PENDING_DDL = """
CREATE TABLE IF NOT EXISTS pending_row_hashes (
    de_key VARCHAR NOT NULL,
    content_sha256 VARCHAR NOT NULL,
    row_key VARCHAR NOT NULL,
    row_hash VARCHAR NOT NULL,
    modified_at TIMESTAMP,
    raw_fp UBIGINT,
    staged_in VARCHAR
)
"""
SEPARATOR = "chr(31)"
HASHED = ("__key", "__hash", "__modified", "__fp")  # what `__delta` keeps of each changed row


@dataclass(frozen=True)
class Delta:
    path: Path
    rows: int
    unchanged: int


def prepare_delta(
    con: duckdb.DuckDBPyConnection,
    de_key: str,
    staged: Path,
    fields: tuple[DEField, ...],
    out: Path,
    *,
    modified_column: str | None = None,
    full_refresh: bool = False,
    fingerprints: np.ndarray | None = None,
    partition_key: str | None = None,
) -> Delta:
    """Write the rows of `staged` that MCE does not have yet to `out`; `__delta` keeps their hashes.

    The staged file is read once: each row is hashed and compared with what MCE has as it is
    read, and only the changed rows' values are kept (in a temporary table that spills to disk). When
    every row is new, `out` is a copy of the staged file; otherwise the changed rows in
    primary-key order, so the same content always gives the same bytes (the import's identity
    is their hash).

    `fingerprints` are the staged rows' raw fingerprints, in the file's order: the changed rows
    carry theirs to `row_hashes`, and a row MCE holds already (same hash) without one recorded
    gets its at once, with `partition_key` as the partition that staged it.
    """
    ensure_row_hashes(con)
    columns = [f.name for f in fields]
    key_columns = [f.name for f in fields if f.is_primary_key] or columns
    types = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in columns) + "}"
    rows_sql = (
        f"read_csv({literal(staged)}, header = true, columns = {types}, quote = '\"', escape = '\"', "
        "auto_detect = false)"
    )
    row_key = f"concat_ws({SEPARATOR}, {', '.join(ident(c) for c in key_columns)})"
    row_hash = (
        "md5(concat_ws("
        + SEPARATOR
        + ", "
        + ", ".join(f"coalesce({ident(c)}, chr(0))" for c in columns)
        + "))"
    )
    modified = (
        f"strptime({ident(modified_column)}, '{STAGED_DATE_FORMAT}')"
        if modified_column
        else "NULL::TIMESTAMP"
    )
    source, fingerprint = rows_sql, "NULL::UBIGINT"
    if fingerprints is not None:
        con.register("__fps", arrow.table({"__fp": np.asarray(fingerprints, dtype=np.uint64)}))
        source, fingerprint = f"{rows_sql} POSITIONAL JOIN __fps", "__fp"
    hashed = (
        f"SELECT {', '.join(ident(c) for c in columns)}, {row_key} AS __key, {row_hash} AS __hash, "
        f"{modified} AS __modified, {fingerprint} AS __fp FROM {source}"
    )
    try:
        return _compare(
            con, de_key, staged, out, columns, key_columns, hashed, full_refresh, fingerprints, partition_key
        )
    finally:
        if fingerprints is not None:
            con.unregister("__fps")


def _compare(
    con: duckdb.DuckDBPyConnection,
    de_key: str,
    staged: Path,
    out: Path,
    columns: list[str],
    key_columns: list[str],
    hashed: str,
    full_refresh: bool,
    fingerprints: np.ndarray | None,
    partition_key: str | None,
) -> Delta:
    if full_refresh or not has_rows(con, de_key):
        # Every row is new: their hashes, and the staged file itself.
        con.execute(f"CREATE OR REPLACE TEMP TABLE __delta AS SELECT {', '.join(HASHED)} FROM ({hashed})")
        rows = scalar(con, "SELECT count(*) FROM __delta")
        _check_fingerprints(staged, rows, fingerprints)
        _copy(staged, out)
        return Delta(out, rows, 0)
    # Known: MCE has this key with the same hash, or with a newer modified time (a stale row).
    # Every row keeps its flag, only changed rows their values (unchanged ones are nulls): one
    # read gives both the count of rows and the rows to send.
    changed = (
        "k.row_key IS NULL OR NOT (k.row_hash = s.__hash OR coalesce(k.modified_at > s.__modified, false))"
    )
    # A row MCE holds with the same hash, staged from raw values of another fingerprint (or
    # none recorded yet): the fingerprint and the day become this staging's. Under new rules
    # (an upgrade of pandas, say) every fingerprint is new; kept, the old ones would never be
    # found again and no later day would skip a row. A re-run of the same day changes nothing.
    refresh = "k.row_hash = s.__hash AND s.__fp IS NOT NULL AND k.raw_fp IS DISTINCT FROM s.__fp"
    kept = ", ".join(
        f"CASE WHEN __changed {'OR __refresh ' if c in ('__key', '__fp') else ''}THEN {ident(c)} END AS {ident(c)}"
        for c in [*columns, *HASHED]
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __compared AS SELECT __changed, __refresh, {kept} FROM (SELECT s.*, "
        f"{changed} AS __changed, coalesce({refresh}, false) AS __refresh FROM ({hashed}) s "
        "LEFT JOIN (SELECT row_key, row_hash, modified_at, raw_fp FROM row_hashes WHERE de_key = $de) k "
        "ON k.row_key = s.__key)",
        {"de": de_key},
    )
    try:
        total = scalar(con, "SELECT count(*) FROM __compared")
        _check_fingerprints(staged, total, fingerprints)
        con.execute(
            "UPDATE row_hashes SET raw_fp = c.__fp, staged_in = $partition "
            "FROM (SELECT __key, __fp FROM __compared WHERE __refresh) c "
            "WHERE row_hashes.de_key = $de AND row_hashes.row_key = c.__key",
            {"de": de_key, "partition": partition_key},
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __delta AS SELECT {', '.join(HASHED)} FROM __compared WHERE __changed"
        )
        rows = scalar(con, "SELECT count(*) FROM __delta")
        if rows == total:
            _copy(staged, out)
        else:
            select = ", ".join(ident(c) for c in columns)
            order = ", ".join(ident(c) for c in key_columns)
            write_csv(con, f"SELECT {select} FROM __compared WHERE __changed ORDER BY {order}", out)
    finally:
        con.execute("DROP TABLE IF EXISTS __compared")
    return Delta(out, rows, total - rows)


def _check_fingerprints(staged: Path, rows: int, fingerprints: np.ndarray | None) -> None:
    if fingerprints is not None and len(fingerprints) != rows:
        raise ValueError(f"{staged}: {rows} rows but {len(fingerprints)} fingerprints beside it")


def _copy(staged: Path, out: Path) -> None:
    part = out.with_name(out.name + ".part")
    shutil.copyfile(staged, part)
    part.replace(out)


def hold_delta(
    con: duckdb.DuckDBPyConnection,
    de_key: str,
    content_sha256: str,
    in_flight: Sequence[str] = (),
    partition_key: str | None = None,
) -> int:
    """Keep the hashes in `__delta` until MCE has imported the content they belong to. Hashes
    held for other contents of the data extension are forgotten unless their import is
    `in_flight` (a run that died before its import started leaves them behind)."""
    with transaction(con):
        con.execute(
            "DELETE FROM pending_row_hashes WHERE de_key = $de "
            "AND (content_sha256 = $sha OR NOT list_contains($in_flight, content_sha256))",
            {"de": de_key, "sha": content_sha256, "in_flight": list(in_flight)},
        )
        con.execute(
            "INSERT INTO pending_row_hashes (de_key, content_sha256, row_key, row_hash, modified_at, raw_fp, "
            "staged_in) SELECT $de, $sha, __key, __hash, __modified, __fp, "
            "CASE WHEN __fp IS NOT NULL THEN $partition END FROM __delta",
            {"de": de_key, "sha": content_sha256, "partition": partition_key},
        )
    return scalar(con, "SELECT count(*) FROM __delta")


def record_delta(con: duckdb.DuckDBPyConnection, de_key: str, content_sha256: str) -> int:
    """MCE has imported the content: its held hashes become what MCE has (one row per key).
    Call inside the transaction that closes the ledger entry."""
    held = (
        "SELECT row_key, row_hash, modified_at, raw_fp, staged_in FROM pending_row_hashes "
        "WHERE de_key = $de AND content_sha256 = $sha"
    )
    params: dict[str, object] = {"de": de_key, "sha": content_sha256}
    con.execute(
        f"DELETE FROM row_hashes WHERE de_key = $de AND row_key IN (SELECT row_key FROM ({held}))", params
    )
    inserted = con.execute(
        f"INSERT INTO row_hashes (de_key, row_key, row_hash, modified_at, raw_fp, staged_in) "
        f"SELECT $de, row_key, row_hash, modified_at, raw_fp, staged_in FROM ({held})",
        params,
    )
    recorded = int(inserted.fetchall()[0][0])  # DuckDB answers an INSERT with its row count
    drop_delta(con, de_key, content_sha256)
    return recorded


def drop_delta(con: duckdb.DuckDBPyConnection, de_key: str, content_sha256: str) -> None:
    """Forget held hashes: their import ended without MCE taking every row."""
    con.execute(
        "DELETE FROM pending_row_hashes WHERE de_key = $de AND content_sha256 = $sha",
        {"de": de_key, "sha": content_sha256},
    )


def known_fingerprints(
    con: duckdb.DuckDBPyConnection, de_key: str, partition_key: str
) -> Fingerprints | None:
    """The raw fingerprints of the rows MCE holds for `de_key` that a day before `partition_key`
    staged, for that day's staging to skip; None before the first import (nothing to skip,
    and a first staging need not fingerprint)."""
    ensure_row_hashes(con)
    if not has_rows(con, de_key):
        return None
    found = con.execute(
        "SELECT raw_fp FROM row_hashes WHERE de_key = $de AND raw_fp IS NOT NULL AND staged_in < $partition",
        {"de": de_key, "partition": partition_key},
    ).fetchnumpy()["raw_fp"]
    return Fingerprints.from_array(np.asarray(found, dtype=np.uint64))


def has_rows(con: duckdb.DuckDBPyConnection, de_key: str) -> bool:
    """Whether MCE holds rows of `de_key` that the pipeline imported (after `ensure_row_hashes`)."""
    return bool(
        scalar(
            con, "SELECT count(*) FROM (SELECT 1 FROM row_hashes WHERE de_key = $de LIMIT 1)", {"de": de_key}
        )
    )


def ensure_row_hashes(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables, or bring those of an earlier version up to date: drop row_hashes'
    primary key (same rows), add the raw fingerprints (null: unknown)."""
    con.execute(DDL)
    con.execute(PENDING_DDL)
    keyed = scalar(
        con,
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'row_hashes' "
        "AND constraint_type = 'PRIMARY KEY'",
    )
    if keyed:
        with transaction(con):
            con.execute("CREATE TABLE row_hashes_unkeyed AS SELECT * FROM row_hashes")
            con.execute("DROP TABLE row_hashes")
            con.execute("ALTER TABLE row_hashes_unkeyed RENAME TO row_hashes")
    for table in ("row_hashes", "pending_row_hashes"):
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS raw_fp UBIGINT")
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS staged_in VARCHAR")
