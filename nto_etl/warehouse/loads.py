"""Idempotent loads into DuckDB: a partition's rows are replaced in one transaction.

Table columns come from the dataset's contract (`duckdb_columns`), plus `_partition`. A field
the contract gains becomes a new column (null in the rows loaded before); a field it drops
keeps its column and its values. Rows are inserted by column name, so the order of the
columns does not matter.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandera.pandas as pa

from nto_etl.contracts import duckdb_columns
from nto_etl.sql import ident, literal, scalar, transaction
from nto_etl.staging import STAGED_DATE_FORMAT


class WarehouseSchemaError(ValueError):
    """A table's column has another type than its contract's field: DuckDB cannot say how the
    values already loaded would convert, so nothing is changed."""


def ensure_table(con: duckdb.DuckDBPyConnection, table: str, model: type[pa.DataFrameModel]) -> None:
    """The table with a column for every field of `model`, created or given the new ones."""
    wanted = duckdb_columns(model)
    columns = ", ".join(f"{ident(c)} {t}" for c, t in wanted.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS {ident(table)} ({columns}, _partition VARCHAR NOT NULL)")
    existing = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = current_schema()",
            [table],
        ).fetchall()
    )
    for column, duck_type in wanted.items():
        if column not in existing:
            con.execute(f"ALTER TABLE {ident(table)} ADD COLUMN {ident(column)} {duck_type}")
            continue
        spelled = str(con.sql(f"SELECT typeof(CAST(NULL AS {duck_type}))").fetchall()[0][0])
        if existing[column] != spelled:
            raise WarehouseSchemaError(
                f"warehouse table {table}: column {column} is {existing[column]} but the contract "
                f"{model.__name__} makes it {spelled}; convert the column, or load into a new table"
            )


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
            f"INSERT INTO {ident(table)} BY NAME SELECT {select}, ? AS _partition FROM read_csv({literal(staged)}, header = true, "
            f"columns = {read_types}, quote = '\"', escape = '\"', auto_detect = false)",
            [partition],
        )
        return scalar(con, f"SELECT count(*) FROM {ident(table)} WHERE _partition = ?", [partition])


def _typed(column: str, duck_type: str) -> str:
    if duck_type == "TIMESTAMP":
        return f"strptime({ident(column)}, '{STAGED_DATE_FORMAT}') AS {ident(column)}"
    return f"CAST({ident(column)} AS {duck_type}) AS {ident(column)}"
