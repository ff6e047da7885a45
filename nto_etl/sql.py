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
