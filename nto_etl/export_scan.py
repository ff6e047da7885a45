"""One plain read of an export, beside staging's: its SHA-256, its size and its line endings.

The SHA-256 is the export's provenance in the asset's metadata. The line endings check
the rejects' line numbers: staging numbers a record's line from its row number and the
line breaks inside the values before it, which DuckDB's reader reports; a blank line it
skips, or a line ended by a bare carriage return, shows only here.

    scan = scan_export("exports/contacts.csv", {})
    scan.sha256, scan.size, scan.extra_line_feeds(records=1_000_000)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np

BLOCK_BYTES = 16 * 1024 * 1024
TAIL_BYTES = 4096
LINE_FEED = ord("\n")  # counted by numpy: a third of the time of bytes.count, without the GIL


@dataclass(frozen=True)
class ExportScan:
    sha256: str
    size: int
    line_feeds: int
    bare_returns: int  # carriage returns not followed by a line feed
    trailing_line_feeds: int  # after the file's last byte that is not a line ending

    def extra_line_feeds(self, records: int) -> int | None:
        """Line feeds beyond the one ending each line of the header and the file's `records`
        (as a CSV reader counts them): those inside values and those of blank lines between
        records (blank lines at the end number no record, so they do not count). None when a
        bare carriage return, which also ends a line for the readers, makes the count say
        nothing."""
        if self.bare_returns:
            return None
        ending = min(self.trailing_line_feeds, 1)  # the last line's own, if it has one
        return self.line_feeds - (self.trailing_line_feeds - ending) - (records + ending)


def scan_export(source: str, options: dict[str, Any]) -> ExportScan:
    """Read any fsspec file once, in blocks (hashing and counting line feeds release the GIL).

    Raises FileNotFoundError for a file that is not there."""
    hasher = hashlib.sha256()
    size = line_feeds = bare_returns = trailing = 0
    last = b""
    with fsspec.open(source, "rb", **options) as handle:
        while block := handle.read(BLOCK_BYTES):
            hasher.update(block)
            size += len(block)
            line_feeds += int(np.count_nonzero(np.frombuffer(block, np.uint8) == LINE_FEED))
            if last == b"\r" and block.startswith(b"\n"):
                bare_returns -= 1  # a CR LF split between two blocks, counted bare in the first
            if b"\r" in block:  # a fast search: only files with carriage returns count them
                bare_returns += block.count(b"\r") - block.count(b"\r\n")
            last = block[-1:]
            text_ends = _text_ends(block)
            trailing = block.count(b"\n", text_ends) + (trailing if text_ends == 0 else 0)
    return ExportScan(hasher.hexdigest(), size, line_feeds, bare_returns, trailing)


def _text_ends(block: bytes) -> int:
    """Where the block's last byte that is not a line ending is, plus one (0: none is). Looks
    at the tail first: stripping the whole block would copy it, holding the GIL."""
    tail = block[-TAIL_BYTES:]
    kept = len(tail.rstrip(b"\r\n"))
    return len(block) - len(tail) + kept if kept else len(block[: -len(tail)].rstrip(b"\r\n"))
