"""Staging a CRM export: read it in chunks, validate it against its contract, write what MCE will import.

    result = stage_export("sftp://crm/exports/contacts_2026-11-27.csv", Contact, Path("staging/contacts"))

Out come two files: the staged CSV (valid rows, MCE's formats, the contract's column
order, one row per primary key) and a rejects CSV (for each refused row: its row and
line number in the source, the column, the failed check and the value). A file that
cannot be read at all raises `ExportFileError` and stages nothing. Given the fingerprints of
the raw rows MCE holds (`known`), the staged CSV leaves those rows out, and the staged rows'
fingerprints are written beside it (`nto_etl.fingerprints`).

Rules (documented in the README):
- empty cells are nulls (MCE stores no empty strings); text is kept as text, so leading
  zeros in postal codes and phones survive;
- booleans accept true/false, 1/0, yes/no, y/n in any case, parsed before validation;
- a primary key repeated in one export keeps the row with the latest modified time
  (the later row on a tie); the others are reported as `duplicate_key` and not staged.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import fsspec
import numpy as np
import pandas as pd
import pandera.pandas as pa

from nto_etl.contracts.fields import dataset_info, de_fields
from nto_etl.contracts.screen import Screen, compile_screen
from nto_etl.csv_writer import write_csv
from nto_etl.export_scan import ExportScan, scan_export
from nto_etl.fingerprints import (
    Fingerprints,
    fingerprint_sql,
    fingerprints_file,
    rules_identity,
    write_fingerprints,
)
from nto_etl.mce import rules
from nto_etl.mce.fields import DEField, duckdb_type
from nto_etl.screened_rows import ScreenedRows, memory_bytes
from nto_etl.secrets import shown_url
from nto_etl.sql import csv_as_text, ident, insert_frame, literal, pages, registered, repeated_hashes, scalar

DEFAULT_BLOCK_BYTES = 16 * 1024 * 1024
STAGING_MEMORY = os.environ.get("NTO_STAGING_MEMORY", "512MB")
# What the staged CSV says for a Date: 24-hour US format, as MCE documents for imports.
STAGED_DATE_FORMAT = "%m/%d/%Y %H:%M:%S"
REJECT_COLUMNS = ["row", "line", "column", "check", "value"]
DELIMITER_HINTS = {";": "semicolons", "\t": "tabs", "|": "pipes"}
Engine = Literal["duckdb", "pandas"]
log = logging.getLogger(__name__)


class ExportFileError(ValueError):
    """The export cannot be staged at all; nothing was staged from it."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{shown_url(source)}: {problem}")
        self.source = source
        self.problem = problem


@dataclass(frozen=True)
class StageResult:
    source: str
    source_sha256: str
    staged_path: Path
    rejects_path: Path
    rows_read: int
    rows_staged: int
    rows_rejected: int
    duplicates_superseded: int
    failures: dict[str, int] = field(default_factory=dict)  # "column: check" -> rows
    # How the rows were validated: "duckdb" (SQL screen, pandera for the rows it did not pass:
    # `rows_via_pandera`), or "pandas" (every row through pandera).
    engine: str = "pandas"
    rows_via_pandera: int = 0
    # Rows whose raw values are those of a row MCE holds (`known`): neither validated nor staged.
    rows_known: int = 0

    @property
    def reject_share(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0


def stage_export(
    source: str,
    model: type[pa.DataFrameModel],
    out_dir: Path,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    delimiter: str = ",",
    storage_options: dict[str, Any] | None = None,
    name: str | None = None,
    engine: Engine = "duckdb",
    known: Fingerprints | None = None,
) -> StageResult:
    """Validate `source` (any fsspec URL or path) against `model` and write staged + rejects CSVs.

    `engine="duckdb"` reads the file with DuckDB and screens every row with the contract's
    rules as SQL (`contracts.screen`); only the rows the screen does not pass go through
    pandera, which decides and names their failures. `engine="pandas"` validates every row
    with pandera, in chunks of `block_bytes`. Both write the same bytes; DuckDB falls back
    to the pandas engine for files its reader refuses (malformed rows, bad encodings), whose
    problems the pandas engine reports precisely.

    With `known` (the fingerprints of the raw rows MCE holds, `nto_etl.fingerprints`), every
    row is fingerprinted as it is read, and the staged file's fingerprints are written beside
    it. A row found among `known` is neither validated nor staged: MCE holds its staged text
    already. It still counts for the row and line numbers, and a key it repeats is ranked
    with it, so the rejects are those of a full staging. The pandas engine fingerprints
    nothing and stages every row.
    """
    fields = de_fields(model)
    columns = [f.name for f in fields]
    options = storage_options or {}
    size = _size(source, options)
    if size == 0:
        raise ExportFileError(source, "the file is empty")
    header = _read_header(source, options, delimiter)
    _check_header(source, header, columns, delimiter)

    in_memory = _in_memory(size)  # first: it checks NTO_STAGING_MEMORY
    out_dir.mkdir(parents=True, exist_ok=True)
    base = name or Path(source.rstrip("/")).stem
    staged_path, rejects_path = out_dir / f"{base}.csv", out_dir / f"{base}.rejects.csv"
    # A scratch database with a memory cap: its temporary tables spill to a directory of this
    # export's own, so memory stays bounded whatever the export's size.
    con = duckdb.connect()
    with ThreadPoolExecutor(1) as pool:
        scan = _Scan(pool, source, options)
        try:
            con.execute(f"SET temp_directory = {literal(out_dir / f'.{base}.staging.tmp')}")
            con.execute(f"SET memory_limit = '{STAGING_MEMORY}'")
            con.execute("SET enable_progress_bar = false")  # a long read would draw one on stderr
            screen = compile_screen(model) if engine == "duckdb" else None
            _create_tables(con, fields)
            export = _Export(source, options, header, delimiter, block_bytes)
            screened = ScreenedRows(con, in_memory=in_memory)
            rows_read = (
                _stage_screened(con, export, model, screen, screened, scan, known)
                if screen is not None
                else None
            )
            used = "duckdb"
            if rows_read is None:
                used = "pandas"
                screened.create_empty(f"{_duck_columns(fields)}, __ok BOOLEAN")
                refused = screen is not None  # DuckDB's reader has already refused the file
                rows_read = _stage_in_chunks(con, export, model, fields, scan, refused=refused)
            names = ", ".join(ident(f.name) for f in fields)
            con.execute(
                f"CREATE TEMP VIEW staged_rows AS SELECT {names}, __row, NULL::BIGINT AS __line "
                f"FROM screened WHERE __ok UNION ALL SELECT {names}, __row, __line FROM rescued"
            )
            # A key is ranked among every row holding it, the rows MCE holds (not staged) included.
            con.execute(
                f"CREATE TEMP VIEW keyed_rows AS SELECT * FROM staged_rows "
                f"UNION ALL SELECT {names}, __row, NULL FROM screened WHERE __ok IS NULL"
            )
            via_pandera = (
                rows_read if used == "pandas" else scalar(con, "SELECT count(*) FROM screened WHERE NOT __ok")
            )
            rows_known = (
                0 if used == "pandas" else scalar(con, "SELECT count(*) FROM screened WHERE __ok IS NULL")
            )

            info = dataset_info(model)
            superseded = _resolve_duplicates(con, screened, info.primary_key, info.modified_column)
            if used == "duckdb":
                _check_line_numbers(con, export, rows_read, scan.result())
            fingerprints_file(staged_path).unlink(missing_ok=True)  # an earlier staging's
            staged = _write_staged(con, fields, staged_path)
            if used == "duckdb" and known is not None:
                _write_fingerprints(con, staged_path, rows_known)
            screened.release()
            write_csv(con, 'SELECT * FROM rejects ORDER BY row, "column" NULLS FIRST, "check"', rejects_path)
            rejected = scalar(
                con, "SELECT count(DISTINCT row) FROM rejects WHERE \"check\" <> 'duplicate_key'"
            )
            failures = dict(
                con.execute(
                    "SELECT coalesce(\"column\" || ': ', '') || \"check\", count(DISTINCT row) FROM rejects GROUP BY 1 ORDER BY 2 DESC"
                ).fetchall()
            )
        finally:
            con.close()
    return StageResult(
        source,
        scan.result().sha256,
        staged_path,
        rejects_path,
        rows_read,
        staged,
        rejected,
        superseded,
        failures,
        used,
        via_pandera,
        rows_known,
    )


def _create_tables(con: duckdb.DuckDBPyConnection, fields: tuple[DEField, ...]) -> None:
    """`rescued`: rows pandera validated, with their row and line; `rejects`; `newlines`.
    Temporary tables: they spill to the scratch directory under the memory limit. The rows the
    DuckDB engine read are `screened` (`ScreenedRows`); without a screen (the pandas engine)
    `screened` is empty and every row is in `rescued`."""
    con.execute(f"CREATE TEMP TABLE rescued ({_duck_columns(fields)}, __row BIGINT, __line BIGINT)")
    con.execute(
        'CREATE TEMP TABLE rejects (row BIGINT, line BIGINT, "column" VARCHAR, "check" VARCHAR, value VARCHAR)'
    )
    # For the rows with line breaks inside values: how many breaks up to and including them.
    con.execute("CREATE TEMP TABLE newlines (__row BIGINT, upto BIGINT)")


@dataclass(frozen=True)
class _Export:
    """The file being staged, and how to read it."""

    url: str
    options: dict[str, Any]
    header: list[str]
    delimiter: str
    block_bytes: int

    @property
    def page_rows(self) -> int:
        """Rows per pandas chunk, for about `block_bytes` of memory."""
        return max(1, self.block_bytes // 256)


def _stage_in_chunks(
    con: duckdb.DuckDBPyConnection,
    export: _Export,
    model: type[pa.DataFrameModel],
    fields: tuple[DEField, ...],
    scan: _Scan,
    *,
    refused: bool = False,
) -> int:
    """The pandas engine: every row through pandera, chunk by chunk; returns the rows read.

    DuckDB's strict reader is fast, but refuses a file with a malformed row and skips blank
    lines without saying where: when it refused the file (or had already, `refused`), or its
    lines do not add up to the file's, Python's csv module reads it, numbering every line."""
    scan.start()
    rows_read = 0
    columns = [f.name for f in fields]
    fast = _DuckChunks(con, export, columns)
    for chunks in ([] if refused else [fast]) + [_CsvChunks(export, columns)]:
        con.execute("DELETE FROM rescued; DELETE FROM rejects")
        rows_read = 0
        for chunk, malformed in chunks:
            rows_read += len(chunk) + len(malformed)
            valid, rejects = validate_chunk(chunk, model, fields)
            insert_frame(con, "rescued", valid)
            insert_frame(con, "rejects", pd.concat([malformed, rejects]) if not malformed.empty else rejects)
        if not fast.refused and scan.result().extra_line_feeds(rows_read) == fast.breaks:
            break
    return rows_read


def _stage_screened(
    con: duckdb.DuckDBPyConnection,
    export: _Export,
    model: type[pa.DataFrameModel],
    screen: Screen,
    screened: ScreenedRows,
    scan: _Scan,
    known: Fingerprints | None = None,
) -> int | None:
    """The DuckDB engine; None when DuckDB's reader refuses the file (the pandas engine then reads it).

    The line breaks inside values are counted (`newlines`), for the line numbers of the rows
    reported in the rejects; `_check_line_numbers` checks them against the file's line feeds
    before anything is written."""
    file_rows = f"SELECT * FROM {_as_text(con, export)}"
    columns = [f.name for f in screen.fields]
    extra: list[str] = []
    skip: str | None = None
    keep: tuple[str, ...] = ()
    if known is not None:  # fingerprinted as read; the rows MCE holds keep only what ranking needs
        rules = rules_identity(screen.passes, *screen.typed.values(), staged_select(screen.fields))
        file_rows = f"SELECT *, {fingerprint_sql(columns, rules)} AS __fp FROM ({file_rows})"
        extra.append("__fp")
        if len(known):
            known.register(con, "__known")
            file_rows = f"SELECT *, __known(__fp) AS __skip FROM ({file_rows})"
            info = dataset_info(model)
            skip, keep = (
                "__skip",
                (*info.primary_key, *([info.modified_column] if info.modified_column else [])),
            )
    # Rows kept whole in memory have their line breaks found in their text afterwards, at a
    # tenth of the cost; other rows' are counted as they are read. The search sees a typed
    # value's text only where the screen refused the row: a typed value it passes holds no line
    # break under the contracts' rules, and were one to, the total would fall short of the
    # file's line feeds, which is checked below (Python's csv module then numbers the lines).
    searched = screened.in_memory and skip is None
    counted = [] if searched else [_breaks(columns)]
    try:
        rows = screened.fill(screen.screening(file_rows, *counted, *extra, skip=skip, keep=keep))  # one pass
    except duckdb.InvalidInputException as exc:
        # Said, because the fallback is slower and skips no row: an error of the query's own
        # making (the fingerprints' lookup, say) would otherwise pass for the file's.
        log.info(
            "%s: staged by the pandas engine, as DuckDB stopped reading it: %s",
            shown_url(export.url),
            _said(exc, export.url),
        )
        return None
    scan.start()  # beside the rest of staging, which leaves a core free more often than the read
    if searched:
        numbers, counts = screened.line_breaks(screen.as_read_columns())
        upto = pd.DataFrame({"__row": numbers, "upto": np.cumsum(counts)}, dtype="int64")
        insert_frame(con, "newlines", upto)
    else:
        con.execute(
            "INSERT INTO newlines SELECT __row, sum(__breaks) OVER (ORDER BY __row) "
            "FROM (SELECT __row, __breaks FROM screened WHERE __breaks > 0)"
        )
    con.execute(
        f"CREATE TEMP TABLE failing AS SELECT {screen.as_read()}, f.__row, {LINE} AS __line "
        f"FROM {screened.refused()} f {LINES_BEFORE}"
    )
    for chunk in pages(con, "SELECT * FROM failing", export.page_rows):
        valid, rejects = validate_chunk(chunk, model, screen.fields)
        insert_frame(con, "rescued", valid)
        insert_frame(con, "rejects", rejects)
    con.execute("DROP TABLE failing")
    return rows


def _check_line_numbers(con: duckdb.DuckDBPyConnection, export: _Export, rows: int, scan: ExportScan) -> None:
    """The rejects' line numbers assume that the rows and the line breaks inside their values
    (`newlines`) make up the file's lines. When the file's line feeds say otherwise (blank
    lines, which DuckDB's reader skips, or lines ended by bare carriage returns), Python's csv
    module numbers the lines and the rejects take its numbers; when it finds other rows than
    DuckDB's reader, the file is refused."""
    breaks = scalar(con, "SELECT coalesce(max(upto), 0) FROM newlines")
    if breaks == scan.extra_line_feeds(rows):
        return
    if (numbered := _number_lines_exactly(con, export)) != rows:
        raise ExportFileError(
            export.url,
            f"DuckDB's reader finds {rows} rows and Python's csv module {numbered}: "
            "its line numbers cannot be trusted",
        )
    # A reject's line follows from its row (the DuckDB engine's rejects all do): renumbered.
    con.execute(
        f'CREATE OR REPLACE TEMP TABLE rejects AS SELECT f.row, {LINE} AS line, f."column", f."check", '
        f"f.value FROM (SELECT *, row AS __row FROM rejects) f {LINES_BEFORE}"
    )


def _said(exc: Exception, url: str) -> str:
    """The first line of DuckDB's error, the export's URL in it shown without a password."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first.replace(url, shown_url(url))


def _as_text(con: duckdb.DuckDBPyConnection, export: _Export) -> str:
    """SQL of DuckDB reading the export strictly, as text (`sql.csv_as_text`); a file that is
    not local is read through its fsspec filesystem."""
    protocol, _ = fsspec.core.split_protocol(export.url)
    path = export.url
    if protocol in ("file", "local"):
        path = fsspec.core.strip_protocol(export.url)
    elif protocol is not None:
        con.register_filesystem(fsspec.core.url_to_fs(export.url, **export.options)[0])
    return csv_as_text(path, export.header, export.delimiter)


def _number_lines_exactly(con: duckdb.DuckDBPyConnection, export: _Export) -> int:
    """`newlines` from Python's csv module, which sees every line: for each row after which
    the lines before the next record grow, how many lines more than rows there are by then.
    A second read, in Python, for the rare file whose line feeds do not add up; returns the
    records it read."""
    con.execute("DELETE FROM newlines")
    rows, upto, previous, records = [], [], 0, 0
    for records, line, _ in _numbered_records(export.url, export.options, export.delimiter):
        if records and (extra := line - records - 1) != previous:
            rows.append(records - 1)
            upto.append(extra)
            previous = extra
    insert_frame(con, "newlines", pd.DataFrame({"__row": rows, "upto": upto}, dtype="int64"))
    return records


def _breaks(columns: list[str]) -> str:
    """SQL of a row's line breaks inside the values of `columns` as read (`__breaks`), for both
    engines; one search in most rows, which have none."""
    names = [ident(c) for c in columns]
    count = " + ".join(f"coalesce(len({n}) - len(replace({n}, chr(10), '')), 0)" for n in names)
    return f"CASE WHEN contains(concat({', '.join(names)}), chr(10)) THEN {count} ELSE 0 END AS __breaks"


# The line a record `f` starts on: its row number, plus one for the header, plus the line
# breaks inside the values of the rows before it (the last `newlines` entry before it).
LINES_BEFORE = "ASOF LEFT JOIN newlines n ON f.__row > n.__row"
LINE = "f.__row + 1 + coalesce(n.upto, 0)"


def _in_memory(size: int) -> bool:
    """Whether the screened rows of an export of `size` bytes are kept in memory (see
    `screened_rows`): when the file fits in staging's memory budget. As Arrow they take about
    the file's size (188 MB for a 195 MB export of a million contacts)."""
    try:
        return size <= memory_bytes(STAGING_MEMORY)
    except ValueError as exc:
        raise ValueError(f"NTO_STAGING_MEMORY: {exc}") from None


def _size(source: str, options: dict[str, Any]) -> int:
    fs, path = fsspec.core.url_to_fs(source, **options)
    try:
        return int(fs.size(path))
    except FileNotFoundError:
        raise ExportFileError(source, "the file does not exist") from None


# -- reading ---------------------------------------------------------------------------------------
class _Scan:
    """The export's scan (`export_scan`) on a thread of its own, from `start()` on. Started with
    DuckDB's read, it took 0.1 s from it on two cores; started after it, it runs while staging
    leaves a core free (pandera, ranking), and is needed only before anything is written."""

    def __init__(self, pool: ThreadPoolExecutor, source: str, options: dict[str, Any]) -> None:
        self.pool, self.source, self.options = pool, source, options
        self.future: Future[ExportScan] | None = None

    def start(self) -> Future[ExportScan]:
        if self.future is None:
            self.future = self.pool.submit(self._scan)
        return self.future

    def result(self) -> ExportScan:
        return self.start().result()

    def _scan(self) -> ExportScan:
        try:
            return scan_export(self.source, self.options)
        except FileNotFoundError:
            raise ExportFileError(self.source, "the file does not exist") from None


def _read_header(source: str, options: dict[str, Any], delimiter: str) -> list[str]:
    with fsspec.open(source, "rb", **options) as handle:
        start = handle.read(1 << 16)
    first_line = (start.splitlines() or [b""])[0]  # ended by LF, CR LF or CR, as DuckDB's reader ends lines
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExportFileError(source, f"the header is not UTF-8 (invalid byte at byte {exc.start})") from None
    if "\x00" in text:
        raise ExportFileError(
            source,
            "the file is not text: its header contains NUL bytes (a spreadsheet or an "
            "archive saved as .csv?)",
        )
    header = next(csv.reader([text], delimiter=delimiter), [])
    if not header or all(not h.strip() for h in header):
        raise ExportFileError(source, "the file has no header row")
    return [h.strip() for h in header]


def _check_header(source: str, header: list[str], columns: list[str], delimiter: str) -> None:
    missing = [c for c in columns if c not in header]
    unknown = [h for h in header if h not in columns]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if not (missing or unknown or repeated):
        return
    problems = []
    if missing:
        problems.append(f"missing columns {', '.join(missing)}")
    if unknown:
        names = ", ".join(h or "(an empty name: a delimiter at the end of the header?)" for h in unknown)
        problems.append(f"unknown columns {names}")
    if repeated:
        problems.append(f"repeated columns {', '.join(repeated)}")
    message = "; ".join(problems)
    if len(header) == 1:
        for sep, label in DELIMITER_HINTS.items():
            if sep != delimiter and sep in header[0]:
                message += f" (the header looks delimited by {label}, expected {delimiter!r})"
    raise ExportFileError(source, message)


Chunk = tuple[pd.DataFrame, pd.DataFrame]  # (rows as text with __line, malformed rows as rejects)
NO_REJECTS = pd.DataFrame(columns=REJECT_COLUMNS)


def _number(frame: pd.DataFrame, embedded: np.ndarray, first_row: int, first_line: int) -> int:
    """Index rows from first_row and add __line (where each record starts), given each row's
    line breaks inside its values (`embedded`); returns the next line."""
    frame.index = pd.RangeIndex(first_row, first_row + len(frame))
    frame["__line"] = first_line + np.arange(len(frame)) + np.cumsum(embedded) - embedded
    return first_line + len(frame) + int(embedded.sum())


class _DuckChunks:
    """The pandas engine's fast path: DuckDB's strict reader, `page_rows` rows at a time, in
    file order. A file it refuses (a malformed row, a stray quote, bytes that are not UTF-8)
    is left to `_CsvChunks`, which says what and where: a lenient reader would guess."""

    def __init__(self, con: duckdb.DuckDBPyConnection, export: _Export, columns: list[str]) -> None:
        self.con, self.export, self.columns = con, export, columns
        self.refused = False
        self.breaks = 0  # line breaks inside the values read so far

    def __iter__(self) -> Iterator[Chunk]:
        next_row, next_line = 1, 2
        names = ", ".join(ident(c) for c in self.columns)
        # A cursor of its own: the chunks are inserted on the connection while this result is open.
        with self.con.cursor() as reading:
            query = f"SELECT {names}, {_breaks(self.columns)} FROM {_as_text(reading, self.export)}"
            try:
                for batch in reading.sql(query).to_arrow_reader(self.export.page_rows):
                    frame = batch.to_pandas()
                    embedded = frame.pop("__breaks").to_numpy(dtype="int64")
                    next_line = _number(frame, embedded, next_row, next_line)
                    next_row += len(frame)
                    self.breaks = next_line - next_row - 1
                    yield frame, NO_REJECTS
            except duckdb.InvalidInputException:
                self.refused = True


class _CsvChunks:
    """The exact path: Python's csv reader, for files with malformed rows or blank lines."""

    def __init__(self, export: _Export, columns: list[str]) -> None:
        self.export, self.columns = export, columns

    def __iter__(self) -> Iterator[Chunk]:
        export, width = self.export, len(self.columns)
        numbered = _numbered_records(export.url, export.options, export.delimiter)
        next(numbered)  # the header, as checked: `export.header`
        order = [export.header.index(c) for c in self.columns]
        records: list[list[str]] = []
        rows: list[int] = []
        lines: list[int] = []
        malformed: list[dict[str, Any]] = []
        for number, line, record in numbered:
            if len(record) == width:
                records.append([record[i] for i in order])
                rows.append(number)
                lines.append(line)
            else:
                malformed.append(
                    {
                        "row": number,
                        "line": line,
                        "column": None,
                        "check": f"field_count({width})",
                        "value": f"{len(record)} fields: " + export.delimiter.join(record)[:200],
                    }
                )
            if len(records) >= export.page_rows:
                yield self._chunk(records, rows, lines), pd.DataFrame(malformed, columns=REJECT_COLUMNS)
                records, rows, lines, malformed = [], [], [], []
        if records or malformed:
            yield self._chunk(records, rows, lines), pd.DataFrame(malformed, columns=REJECT_COLUMNS)

    def _chunk(self, records: list[list[str]], rows: list[int], lines: list[int]) -> pd.DataFrame:
        frame = pd.DataFrame(records, columns=self.columns, index=pd.Index(rows), dtype="str")
        frame = frame.replace("", None)
        frame["__line"] = np.asarray(lines, dtype="int64")
        return frame


def _numbered_records(
    source: str, options: dict[str, Any], delimiter: str
) -> Iterator[tuple[int, int, list[str]]]:
    """(row, line, fields) of the header (row 0) and each record, as Python's csv module reads
    the file: a record's line is where it starts; blank lines are lines but not records (as
    for DuckDB's reader, which skips them)."""
    with fsspec.open(source, "rb", **options) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=delimiter, strict=True)
        row, line = 0, 1
        try:
            for record in reader:
                if record:
                    yield row, line, record
                    row += 1
                line = reader.line_num + 1
        except csv.Error as exc:
            hint = (
                "it may be truncated"
                if "end of data" in str(exc)
                else 'a quote inside a quoted value is written twice (""), not escaped'
            )
            raise ExportFileError(
                source, f"the file cannot be parsed as CSV at line {reader.line_num} ({exc}); {hint}"
            ) from None
        except UnicodeDecodeError:
            raise ExportFileError(
                source, f"the file is not UTF-8: {_first_bad_byte(source, options)}"
            ) from None


def _first_bad_byte(source: str, options: dict[str, Any]) -> str:
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with fsspec.open(source, "rb", **options) as handle:
        while block := handle.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return f"invalid byte 0x{block[exc.start]:02x} at byte {offset + exc.start}"
            offset += len(block)
    return "invalid UTF-8"


# -- validation ------------------------------------------------------------------------------------
def validate_chunk(
    chunk: pd.DataFrame, model: type[pa.DataFrameModel], fields: tuple[DEField, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows coerced to the contract, with __row/__line) and (rejects, one row per failure)."""
    lines = chunk.pop("__line")
    frame = chunk.replace("", None)
    for f in fields:
        if f.field_type == "Boolean":
            frame[f.name] = _parse_booleans(frame[f.name])
    frame, coerce_rejects = _precoerce(frame, fields, lines)
    rejects: list[pd.DataFrame] = [coerce_rejects] if not coerce_rejects.empty else []
    valid = frame
    for _ in range(3):  # coercion failures first, then the checks on the rows that coerced
        if frame.empty and rejects:
            # Every row failed already; pandera's fixed cost (0.1-0.15 s a call) would buy nothing.
            valid = frame
            break
        try:
            valid = model.validate(frame, lazy=True)
            break
        except pa.errors.SchemaErrors as errors:
            cases = errors.failure_cases
            row_level = cases[cases["index"].notna()]
            column_level = cases[cases["index"].isna()]
            if row_level.empty:
                problem = "; ".join(f"{c.column}: {c.check}" for c in column_level.itertuples())
                raise ValueError(f"the contract {model.__name__} cannot be applied: {problem}") from None
            rejects.append(_reject_rows(row_level, lines))
            frame = frame.drop(index=row_level["index"].astype("int64").unique())
    else:
        raise AssertionError("validation did not converge")
    valid = valid.copy()
    valid["__row"] = valid.index.astype("int64")
    valid["__line"] = lines.loc[valid.index].astype("int64")
    reject_frame = pd.concat(rejects) if rejects else pd.DataFrame(columns=REJECT_COLUMNS)
    return valid, reject_frame


COERCIONS = {"Date": "datetime64[ns]", "Number": "Int64", "Decimal": "Float64"}


def _precoerce(
    frame: pd.DataFrame, fields: tuple[DEField, ...], lines: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse dates and numbers vectorised, before pandera.

    pandera finds the values it cannot coerce one by one (about 0.2 ms each): with one
    bad date in a million rows that is minutes. Here the failures are found in one pass,
    reported under the check name pandera uses, and their rows set aside.
    """
    failures = []
    for f in fields:
        if f.field_type not in COERCIONS or f.name not in frame:
            continue
        text = frame[f.name]
        if f.field_type == "Date":
            parsed = _parse_dates(text)
            bad = text.notna() & parsed.isna()
        else:
            # Whatever the text column's dtype, as float64 with NaN for what is not a number:
            # "NaN" and "inf" parse, but MCE takes neither, so they count as not numbers.
            values = pd.to_numeric(text.str.strip(), errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )
            finite = np.isfinite(values)
            if f.field_type == "Number":
                finite &= np.mod(values, 1, where=finite, out=np.ones_like(values)) == 0
            bad = text.notna() & ~finite
            parsed = pd.Series(np.where(finite, values, np.nan), index=text.index)
        if bad.any():
            failures.append(
                pd.DataFrame(
                    {
                        "row": frame.index[bad].astype("int64"),
                        "line": lines.loc[frame.index[bad]].to_numpy(),
                        "column": f.name,
                        "check": f"coerce_dtype('{COERCIONS[f.field_type]}')",
                        "value": text[bad].astype(str).map(_shorten).to_numpy(),
                    }
                )
            )
        frame[f.name] = parsed.where(~bad).astype(COERCIONS[f.field_type])
    if not failures:
        return frame, pd.DataFrame(columns=REJECT_COLUMNS)
    rejects = pd.concat(failures).sort_values(["row", "column"], kind="stable")
    return frame.drop(index=rejects["row"].unique()), rejects


def _parse_dates(text: pd.Series) -> pd.Series:
    """ISO 8601 texts as naive nanosecond timestamps; NaT where a value is not one.

    Not one: a value with a time zone (``Z``, ``+02:00``; MCE's dates carry none, and pandas
    refuses a column mixing zones as a whole, so such columns are parsed value by value), and
    a date outside what datetime64[ns] holds (1677-2262).
    """
    try:
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            raise ValueError("time zones")
    except ValueError:

        def one(value: Any) -> Any:
            stamp = (
                pd.to_datetime(value, format="ISO8601", errors="coerce") if isinstance(value, str) else pd.NaT
            )
            return pd.NaT if stamp is pd.NaT or stamp.tzinfo is not None else stamp

        parsed = pd.to_datetime(text.map(one).astype(object), errors="coerce")
    in_range = (parsed >= pd.Timestamp.min) & (parsed <= pd.Timestamp.max)
    return parsed.where(in_range).astype("datetime64[ns]")


def _parse_booleans(values: pd.Series) -> pd.Series:
    lowered = values.str.strip().str.lower()
    parsed = pd.Series(pd.NA, index=values.index, dtype="object")
    parsed[lowered.isin(rules.BOOLEAN_TRUE)] = True
    parsed[lowered.isin(rules.BOOLEAN_FALSE)] = False
    unknown = values.notna() & ~lowered.isin(rules.BOOLEAN_TRUE + rules.BOOLEAN_FALSE)
    parsed[unknown] = values[unknown]  # left as text: the contract's coercion reports it
    return parsed


MAX_REJECT_VALUE = 1000


def _shorten(value: Any) -> Any:
    """A rejected value as the rejects file shows it: long values cut, with their length."""
    if not isinstance(value, str):
        return value
    return (
        value
        if len(value) <= MAX_REJECT_VALUE
        else f"{value[:MAX_REJECT_VALUE]}... ({len(value)} characters)"
    )


def _reject_rows(cases: pd.DataFrame, lines: pd.Series) -> pd.DataFrame:
    cases = cases.copy()
    cases["row"] = cases["index"].astype("int64")
    # A failed coercion is reported twice by pandera (coerce_dtype and dtype); keep the first.
    coerced = set(
        cases.loc[cases["check"].str.startswith("coerce_dtype"), ["row", "column"]].itertuples(index=False)
    )
    duplicate_dtype = cases["check"].str.startswith("dtype(") & pd.Series(
        [(r, c) in coerced for r, c in zip(cases["row"], cases["column"], strict=True)], index=cases.index
    )
    cases = cases[~duplicate_dtype]
    return pd.DataFrame(
        {
            "row": cases["row"].to_numpy(),
            "line": lines.loc[cases["row"]].to_numpy(),
            "column": cases["column"].astype(str).to_numpy(),
            "check": cases["check"].astype(str).to_numpy(),
            "value": cases["failure_case"].astype(str).map(_shorten).to_numpy(),
        }
    )


# -- writing ---------------------------------------------------------------------------------------
def _duck_columns(fields: tuple[DEField, ...]) -> str:
    return ", ".join(f"{ident(f.name)} {duckdb_type(f)}" for f in fields)


def _resolve_duplicates(
    con: duckdb.DuckDBPyConnection, screened: ScreenedRows, key: tuple[str, ...], modified: str | None
) -> int:
    if not key:
        return 0
    partition = ", ".join(ident(k) for k in key)
    order = (f"{ident(modified)} DESC NULLS LAST, " if modified else "") + "__row DESC"
    # Only the rows whose key hash repeats are ranked (by their keys themselves): in a normal
    # export that is a handful of rows. Only the columns ranking needs are read.
    key_hash = f"hash({partition})"
    repeated = repeated_hashes(con, f"SELECT {key_hash} AS h FROM keyed_rows")
    if not len(repeated):
        return 0
    needed = ", ".join(ident(c) for c in dict.fromkeys([*key, *([modified] if modified else [])]))
    with registered(con, "__repeated", pd.DataFrame({"h": repeated})):
        con.execute(
            f"CREATE TEMP TABLE ranked AS SELECT *, row_number() OVER w AS __rank, first_value(__row) OVER w AS __winner "
            f"FROM (SELECT {needed}, __row, __line FROM keyed_rows WHERE {key_hash} IN (SELECT h FROM __repeated)) "
            f"WINDOW w AS (PARTITION BY {partition} ORDER BY {order})"
        )
    superseded = scalar(con, "SELECT count(*) FROM ranked WHERE __rank > 1")
    if superseded:
        keys = " || '|' || ".join(f"CAST({ident(k)} AS VARCHAR)" for k in key)
        con.execute(
            f"INSERT INTO rejects SELECT f.__row, coalesce(f.__line, {LINE}), "
            f"'{'|'.join(key)}', 'duplicate_key', {keys} || ' (kept row ' || __winner || ')' "
            f"FROM (SELECT * FROM ranked WHERE __rank > 1) f {LINES_BEFORE}"
        )
        screened.set_aside(con.execute("SELECT __row FROM ranked WHERE __rank > 1").fetchnumpy()["__row"])
        con.execute("DELETE FROM rescued WHERE __row IN (SELECT __row FROM ranked WHERE __rank > 1)")
    con.execute("DROP TABLE ranked")
    return superseded


def staged_select(fields: tuple[DEField, ...]) -> str:
    """SQL rendering each column in the text MCE imports (dates, booleans, decimals)."""
    parts = []
    for f in fields:
        col = f'"{f.name}"'
        if f.field_type == "Date":
            parts.append(f"strftime({col}, '{STAGED_DATE_FORMAT}') AS {col}")
        elif f.field_type == "Boolean":
            parts.append(f"CASE WHEN {col} THEN 'true' WHEN NOT {col} THEN 'false' END AS {col}")
        else:
            parts.append(f"CAST({col} AS VARCHAR) AS {col}")
    return ", ".join(parts)


def _write_staged(con: duckdb.DuckDBPyConnection, fields: tuple[DEField, ...], path: Path) -> int:
    """The staged CSV, in file order; returns its rows. Screened rows are kept in file order, so
    only when pandera rescued some rows does the output need sorting."""
    rows = (
        "staged_rows ORDER BY __row" if scalar(con, "SELECT count(*) FROM rescued") else "screened WHERE __ok"
    )
    return write_csv(con, f"SELECT {staged_select(fields)} FROM {rows}", path)


def _write_fingerprints(con: duckdb.DuckDBPyConnection, staged_path: Path, skipped: int) -> None:
    """The staged rows' fingerprints, in the staged file's order (`_write_staged`'s)."""
    rescued = scalar(con, "SELECT count(*) FROM rescued")
    query = (
        "SELECT s.__fp FROM staged_rows r JOIN screened s USING (__row) ORDER BY r.__row"
        if rescued
        else "SELECT __fp FROM screened WHERE __ok"
    )
    write_fingerprints(staged_path, con.execute(query).fetchnumpy()["__fp"], skipped)


def read_staged(path: Path | str, model: type[pa.DataFrameModel]) -> pd.DataFrame:
    """A staged CSV parsed back into the contract's types (for checks and round trips)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None)
    for f in de_fields(model):
        if f.field_type == "Boolean":
            frame[f.name] = _parse_booleans(frame[f.name])
        elif f.field_type == "Date":
            frame[f.name] = pd.to_datetime(frame[f.name], format=STAGED_DATE_FORMAT)
    return model.validate(frame, lazy=True)
