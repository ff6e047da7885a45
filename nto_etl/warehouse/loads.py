"""Idempotent loads into DuckDB: a partition's rows are replaced in one transaction.

Table columns come from the dataset's contract (`duckdb_columns`), plus `_partition`.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandera.pandas as pa

from nto_etl.contracts import duckdb_columns
from nto_etl.sql import ident, literal, scalar, transaction
from nto_etl.staging import STAGED_DATE_FORMAT


def ensure_table(con: duckdb.DuckDBPyConnection, table: str, model: type[pa.DataFrameModel]) -> None:
    columns = ", ".join(f"{ident(c)} {t}" for c, t in duckdb_columns(model).items())
    con.execute(f"CREATE TABLE IF NOT EXISTS {ident(table)} ({columns}, _partition VARCHAR NOT NULL)")


def load_staged_partition(
    con: duckdb.DuckDBPyConnection, table: str, model: type[pa.DataFrameModel], staged: Path, partition: str
) -> int:
    """Replace `partition`'s rows of `table` with the staged CSV; re-running changes nothing."""
    ensure_table(con, table, model)
    types = duckdb_columns(model)
    read_types = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in types) + "}"
    select = ", ".join(_typed(c, t) for c, t in types.items())
    with transaction(con):
        con.execute(f"DELETE FROM {ident(table)} WHERE _partition = ?", [partition])
        con.execute(
            f"INSERT INTO {ident(table)} SELECT {select}, ? FROM read_csv({literal(staged)}, header = true, "
            f"columns = {read_types}, quote = '\"', escape = '\"', auto_detect = false)",
            [partition],
        )
        return scalar(con, f"SELECT count(*) FROM {ident(table)} WHERE _partition = ?", [partition])


def _typed(column: str, duck_type: str) -> str:
    if duck_type == "TIMESTAMP":
        return f"strptime({ident(column)}, '{STAGED_DATE_FORMAT}')"
    if duck_type == "BOOLEAN":
        return f"CAST({ident(column)} AS BOOLEAN)"
    return f"CAST({ident(column)} AS {duck_type})"
