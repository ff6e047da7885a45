"""Helpers for the SQL the pipeline runs on DuckDB: quoting, one-value queries, transactions,
and repeated keys found by their hashes.

Quoting is for identifiers from contracts and config and paths the pipeline chose itself.
Values from files or users never go through here: they are bound parameters.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str | Path) -> str:
    """A SQL string literal, for what DuckDB takes no parameter for (COPY targets, read_csv paths)."""
    return "'" + str(value).replace("'", "''") + "'"


def scalar(
    con: duckdb.DuckDBPyConnection, query: str, params: list[object] | dict[str, object] | None = None
) -> int:
    """The first value of a query's first row as an int (0 when there is no row). All rows are
    fetched, so no result stays open on the connection."""
    rows = con.execute(query, params or []).fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK when the block raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def unordered_inserts(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Let DuckDB write rows in any order within the block, for tables whose rows have none.

    With insertion order kept, a large parallel insert is written in batches that the next
    checkpoint compresses again; without it, each thread writes its row groups compressed as it
    goes: 10M tracking events land in about 80% of the time, in a third less space. The setting
    is DuckDB's (`preserve_insertion_order`) and global to the database instance, so it is put
    back when the block ends; a query of another connection to the same database in this process
    meanwhile may see rows in any order, which only ORDER BY ever promised.
    """
    [(was,)] = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()
    con.execute("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        con.execute(f"SET preserve_insertion_order = {bool(was)}")


def csv_as_text(path: str | Path, header: list[str], delimiter: str = ",") -> str:
    """SQL of DuckDB reading a CSV file as text in `header`'s columns, strictly: a row with too
    few or too many fields, a stray quote or bytes that are not UTF-8 are errors, never guesses.
    Empty cells, quoted or not, are nulls."""
    columns = "{" + ", ".join(f"{literal(h)}: 'VARCHAR'" for h in header) + "}"
    return (
        f"read_csv({literal(path)}, columns = {columns}, header = true, auto_detect = false, "
        f"delim = {literal(delimiter)}, quote = '\"', escape = '\"', strict_mode = true, "
        "null_padding = false, allow_quoted_nulls = true, encoding = 'utf-8')"
    )


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> Iterator[str]:
    """`frame` readable by SQL as `name` within the block."""
    con.register(name, frame)
    try:
        yield name
    finally:
        con.unregister(name)


def insert_frame(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, columns: list[str] | None = None
) -> None:
    """Append `frame`'s `columns` (all of them by default) to the same-named columns of `table`."""
    if frame.empty:
        return
    names = ", ".join(ident(c) for c in (columns if columns is not None else list(frame.columns)))
    with registered(con, "__inserted", frame):
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM __inserted")


def pages(con: duckdb.DuckDBPyConnection, query: str, rows: int) -> Iterator[pd.DataFrame]:
    """The rows of `query` (with a unique integer `__row`) by `__row`, `rows` at a time, as pandas
    frames indexed by `__row` (Arrow's dtypes: nullable strings, as the pandas engine reads).

    Each page is its own query from where the last one ended, so the caller may write to the
    connection between pages, and memory holds one page whatever the number of rows."""
    after = 0
    while not (
        page := con.sql(
            f"SELECT * FROM ({query}) WHERE __row > ? ORDER BY __row LIMIT ?", params=[after, rows]
        )
        .to_arrow_table()
        .to_pandas()
    ).empty:
        page.index = pd.Index(page.pop("__row").to_numpy(dtype="int64"))
        after = int(page.index[-1])
        yield page


# Hashes sorted at once by `repeated_hashes`: 160 MB at most (the array and the sort's copy).
HASHES_AT_ONCE = 10_000_000


def repeated_hashes(
    con: duckdb.DuckDBPyConnection, hashes: str, params: list[object] | dict[str, object] | None = None
) -> np.ndarray:
    """The values the query `hashes` (one UBIGINT column, `h`) gives more than once, each once.

    How repeated keys are found: equal keys hash equal, so every key that repeats has its hash
    here, and no hash here proves that no key repeats. A hash here may also be a collision of
    different keys, so callers compare the keys themselves among the rows it selects. numpy
    sorts ten million hashes in about a third of the time DuckDB's hash aggregate takes to
    group them (0.3 s against 1-1.9 s on two cores). Beyond `HASHES_AT_ONCE` values they are
    taken in slices by value, so memory stays bounded.
    """
    slices = -(-scalar(con, f"SELECT count(*) FROM ({hashes})", params) // HASHES_AT_ONCE)
    found = [np.empty(0, dtype=np.uint64)]
    for part in range(slices):
        where = f" WHERE h % {slices} = {part}" if slices > 1 else ""
        values = np.asarray(con.execute(f"SELECT h FROM ({hashes}){where}", params or []).fetchnumpy()["h"])
        values.sort()
        found.append(np.unique(values[1:][values[1:] == values[:-1]]))
    return np.concatenate(found)
