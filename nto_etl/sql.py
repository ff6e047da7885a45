"""Quoting for the SQL the pipeline builds: identifiers from contracts and config, paths it chose itself.

Values from files or users never go through here: they are bound parameters.
"""

from pathlib import Path


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str | Path) -> str:
    """A SQL string literal, for what DuckDB takes no parameter for (COPY targets, read_csv paths)."""
    return "'" + str(value).replace("'", "''") + "'"
