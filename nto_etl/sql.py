"""Quoting for the SQL the pipeline builds: identifiers from contracts and config, paths it chose itself.

Values from files or users never go through here: they are bound parameters.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


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
