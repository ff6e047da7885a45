"""A DuckDB query written to a CSV file: streamed, in the query's order, and atomic.

For 1M staged contacts DuckDB's own `COPY ... TO` took about 1 s, Arrow's CSV writer about
0.5 s including the hand-over of the rows to Arrow (it quotes every text value rather than
only those that need it). So the pipeline's CSV files (staged rows, deltas, rejects) come
from here:

    rows = write_csv(con, "SELECT * FROM staged ORDER BY __row", Path("staged/contacts.csv"))

Text values are always quoted (an embedded quote doubled), numbers never, and nulls are
empty and unquoted: what MCE's import reads as "no value". The header is written quoted
only where a name needs it. The file appears under its name only once it is complete.
"""

from __future__ import annotations

import csv
import io
import os
import queue
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import duckdb
import pyarrow as arrow
import pyarrow.csv as pacsv

BATCH_ROWS = 100_000
QUEUED_BATCHES = 2


def write_csv(
    con: duckdb.DuckDBPyConnection, query: str, path: Path, *, delimiter: str = ",", eol: str = "\n"
) -> int:
    """Stream the rows of `query` to `path`, lines ending in `eol`; returns the number of rows written.

    A second thread writes while DuckDB computes the next batches (both release the GIL)."""
    part = path.with_name(path.name + ".part")
    reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
    options = pacsv.WriteOptions(include_header=False, delimiter=delimiter, eol=eol)
    batches: queue.Queue[arrow.RecordBatch | None] = queue.Queue(maxsize=QUEUED_BATCHES)
    rows = 0
    try:
        with part.open("wb") as out, ThreadPoolExecutor(1, thread_name_prefix="csv-writer") as pool:
            out.write(_header(reader.schema.names, delimiter, eol).encode("utf-8"))
            writing = pool.submit(_write_batches, out, reader.schema, options, batches)
            try:
                for batch in reader:
                    if not _hand_over(batches, batch, writing):
                        break  # the writer failed; its error is raised below
                    rows += batch.num_rows
            finally:
                _hand_over(batches, None, writing)
            writing.result()
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return rows


def _write_batches(
    out: BinaryIO,
    schema: arrow.Schema,
    options: pacsv.WriteOptions,
    batches: queue.Queue[arrow.RecordBatch | None],
) -> None:
    with pacsv.CSVWriter(out, schema, write_options=options) as writer:
        while (batch := batches.get()) is not None:
            writer.write_batch(batch)


def _hand_over(
    batches: queue.Queue[arrow.RecordBatch | None], batch: arrow.RecordBatch | None, writing: Future[None]
) -> bool:
    """Queue `batch` for the writer; False when the writer has stopped (it would never take it)."""
    while not writing.done():
        try:
            batches.put(batch, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _header(names: list[str], delimiter: str, eol: str) -> str:
    line = io.StringIO()
    csv.writer(line, delimiter=delimiter, lineterminator=eol).writerow(names)
    return line.getvalue()
