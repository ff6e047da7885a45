"""Delta imports: only rows that changed since the last successful import of a data extension.

A row's hash is taken over its staged text (the exact bytes MCE would receive), keyed
by its primary key, and kept in DuckDB once MCE has imported it without errors. A row
older (by the contract's modified column) than the one MCE has is stale and never sent:
backfilling an old day cannot undo a newer change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from nto_etl.mce.fields import DEField
from nto_etl.sql import ident, literal
from nto_etl.staging import STAGED_DATE_FORMAT

DDL = """
CREATE TABLE IF NOT EXISTS row_hashes (
    de_key VARCHAR NOT NULL,
    row_key VARCHAR NOT NULL,
    row_hash VARCHAR NOT NULL,
    modified_at TIMESTAMP,
    PRIMARY KEY (de_key, row_key)
)
"""
SEPARATOR = "chr(31)"


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
) -> Delta:
    """Write the rows of `staged` that MCE does not have yet to `out`; `__delta` keeps their hashes."""
    con.execute(DDL)
    columns = [f.name for f in fields]
    key_columns = [f.name for f in fields if f.is_primary_key] or columns
    types = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in columns) + "}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __staged AS SELECT * FROM read_csv({literal(staged)}, header = true, "
        f"columns = {types}, quote = '\"', escape = '\"', auto_detect = false)"
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
    known = (
        "FALSE"
        if full_refresh
        else (
            "EXISTS (SELECT 1 FROM row_hashes h WHERE h.de_key = $de AND h.row_key = s.__key "
            "AND (h.row_hash = s.__hash OR h.modified_at > s.__modified))"
        )
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __hashed AS SELECT *, {row_key} AS __key, {row_hash} AS __hash, "
        f"{modified} AS __modified, row_number() OVER () AS __pos FROM __staged",
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __delta AS SELECT * FROM __hashed s WHERE NOT ({known})",
        {"de": de_key},
    )
    total = _count(con, "__hashed")
    rows = _count(con, "__delta")
    select = ", ".join(ident(c) for c in columns)
    part = out.with_name(out.name + ".part")
    con.execute(
        f"COPY (SELECT {select} FROM __delta ORDER BY __pos) TO {literal(part)} "
        "(HEADER, DELIMITER ',', QUOTE '\"', ESCAPE '\"')"
    )
    part.replace(out)
    return Delta(out, rows, total - rows)


def record_delta(con: duckdb.DuckDBPyConnection, de_key: str) -> int:
    """Remember the hashes of the rows in `__delta`: MCE now has them."""
    con.execute(
        "INSERT OR REPLACE INTO row_hashes SELECT $de, __key, __hash, __modified FROM __delta", {"de": de_key}
    )
    return _count(con, "__delta")


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
