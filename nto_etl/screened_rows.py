"""The rows staging's screen read, numbered in file order, for SQL to query as `screened`.

Staging needs each row's number (the rejects name it; a repeated key keeps the later row)
and writes the staged rows in the file's order. A DuckDB query without joins keeps the
file's order, so the rows are numbered as they come. Where they are kept decides the cost:

- in memory as an Arrow table, when the export fits in staging's memory budget. For a
  million contacts, collecting the screened rows took about 1.1 s, and storing them in a
  DuckDB table in file order 1.5 s (the ordered insert is the cost, not the reading);
- otherwise in a DuckDB temporary table. It spills to disk under the memory limit, so an
  export of ten million rows stays within bounded memory.

    rows = ScreenedRows(con, in_memory=True)
    rows.fill(screen.screening(file_rows))  # then: SELECT ... FROM screened WHERE __ok
    refused = rows.refused()                # SELECT ... FROM {refused}: the rows __ok is false for
    rows.set_aside(np.array([7, 12]))       # rows 7 and 12 are no longer staged

Both answer the same SQL: `screened` has the query's columns and `__row` (1 for the first
row). The query must give a boolean `__ok` (the row is staged).
"""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd
import pyarrow as arrow
import pyarrow.compute as pc

from nto_etl.sql import registered, scalar

NAME = "screened"
STORE = "__screened_store"  # the table behind `screened` when the rows are not in memory
REFUSED = "__screened_refused"  # the refused rows, picked out of the rows kept in memory
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


class ScreenedRows:
    """The screened rows of one staging, on one connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, in_memory: bool) -> None:
        self.con = con
        self.in_memory = in_memory
        self.table: arrow.Table | None = None

    def fill(self, query: str) -> int:
        """Keep the rows of `query`, numbered in its order; returns how many there are.

        Raises what DuckDB raises for the query (a file its reader refuses), keeping nothing."""
        if self.in_memory:
            table = self.con.sql(query).to_arrow_table()
            self._register(table.append_column("__row", arrow.array(np.arange(1, table.num_rows + 1))))
            return table.num_rows
        self._store(f"AS {query}")
        return scalar(self.con, f"SELECT count(*) FROM {STORE}")

    def create_empty(self, columns: str) -> None:
        """An empty `screened` with `columns` (SQL column definitions, `__ok BOOLEAN` among
        them), for a staging whose rows were not screened."""
        self._store(f"({columns})")

    def set_aside(self, rows: np.ndarray) -> None:
        """Rows (by number) that are no longer staged: their `__ok` becomes false."""
        if not len(rows):
            return
        if self.table is None:  # in a table
            with registered(self.con, "__set_aside", pd.DataFrame({"__row": rows.astype(np.int64)})):
                self.con.execute(
                    f"UPDATE {STORE} SET __ok = false WHERE rowid + 1 IN (SELECT __row FROM __set_aside)"
                )
            return
        aside = np.zeros(self.table.num_rows, dtype=bool)
        aside[np.asarray(rows, dtype=np.int64) - 1] = True
        ok = pc.if_else(arrow.array(aside), False, self.table.column("__ok"))  # nulls elsewhere stay
        index = self.table.schema.get_field_index("__ok")
        self._register(self.table.set_column(index, "__ok", ok))

    def refused(self) -> str:
        """SQL naming the rows the screen refused (`__ok` false), for a query's FROM.

        In memory, Arrow picks them out of the kept table (0.01 s for a million rows), where a
        query over the whole table would cost about 0.1 s to find a few thousand."""
        if self.table is None:
            return f"(SELECT * FROM {NAME} WHERE NOT __ok)"
        ok = self.table.column("__ok")
        self.con.register(REFUSED, self.table.filter(pc.invert(ok)))  # a null __ok is no refusal
        return REFUSED

    def line_breaks(self, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows kept in memory only: the numbers of the rows whose values in the text `columns`
        hold line feeds, and how many each holds, in row order.

        Each column's bytes are compared with a line feed in one numpy pass: a few hundredths
        of a second for a million rows, where counting them per row in SQL as the rows are read
        cost a quarter of a second, and pyarrow's `count_substring`, which looks at every value
        on its own, half a second."""
        if self.table is None:
            raise ValueError("line_breaks needs the rows in memory")
        found: list[np.ndarray] = []
        for name in columns:
            first = 0
            for chunk in self.table.column(name).chunks:
                found.append(first + _line_feed_values(chunk))
                first += len(chunk)
        rows, breaks = np.unique(
            np.concatenate(found) if found else np.empty(0, np.int64), return_counts=True
        )
        return rows + 1, breaks

    def release(self) -> None:
        """Free the rows (the memory of the Arrow table, or the table's pages)."""
        if self.table is not None:
            self.con.unregister(NAME)
            self.con.unregister(REFUSED)
            self.table = None
        else:
            self.con.execute(f"DROP VIEW IF EXISTS {NAME}")
            self.con.execute(f"DROP TABLE IF EXISTS {STORE}")

    def _store(self, definition: str) -> None:
        """`screened` over a temporary table (`definition`: its columns, or `AS query`); the
        table keeps insertion order, so a row's number is its rowid + 1."""
        self.con.execute(f"CREATE TEMP TABLE {STORE} {definition}")
        self.con.execute(f"CREATE TEMP VIEW {NAME} AS SELECT *, rowid + 1 AS __row FROM {STORE}")

    def _register(self, table: arrow.Table) -> None:
        self.table = table
        self.con.register(NAME, table)


def _line_feed_values(text: arrow.Array) -> np.ndarray:
    """For each line feed in the text array's values, the index of the value holding it."""
    if arrow.types.is_string(text.type):
        offset_type: type[np.signedinteger] = np.int32
    elif arrow.types.is_large_string(text.type):
        offset_type = np.int64
    else:
        text, offset_type = text.cast(arrow.large_string()), np.int64
    _, offsets_buffer, data = text.buffers()
    if data is None or len(text) == 0:
        return np.empty(0, np.int64)
    offsets = np.frombuffer(offsets_buffer, offset_type)[text.offset : text.offset + len(text) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    found = np.flatnonzero(np.frombuffer(data, np.uint8, count=end - start, offset=start) == ord("\n"))
    values = np.searchsorted(offsets, found + start, side="right") - 1
    if text.null_count:  # Arrow lets a null value's slot hold bytes: they are no value's
        values = values[text.is_valid().to_numpy(zero_copy_only=False)[values]]
    return values.astype(np.int64)


def memory_bytes(setting: str) -> int:
    """Bytes of a DuckDB-style memory setting: '512MB', '1GiB', '2.5 GB' (KB = 1000, KiB = 1024)."""
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]I?B|B)?\s*", setting.upper())
    if found is None:
        raise ValueError(f"not a memory size: {setting!r} (expected e.g. 512MB or 1GiB)")
    return int(float(found.group(1)) * UNITS[found.group(2) or ""])
