"""The import ledger: every import into MCE, keyed on (data extension, content hash) and on the task id.

It is what makes "never import the same content twice" hold: an entry is written
*before* the import starts (starting), updated with MCE's task id as soon as MCE
returns it (started), and closed with MCE's counts (Completed / Error). A run that
crashed in between finds the entry and finishes it instead of importing again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from nto_etl.mce.imports import ImportResult

DDL = """
CREATE TABLE IF NOT EXISTS import_ledger (
    de_key VARCHAR NOT NULL,
    content_sha256 VARCHAR NOT NULL,
    partition_key VARCHAR,
    definition_key VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    row_count BIGINT NOT NULL,
    task_id VARCHAR,
    status VARCHAR NOT NULL,
    total_rows BIGINT,
    successful BIGINT,
    errors BIGINT,
    duplicates BIGINT,
    message VARCHAR,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    PRIMARY KEY (de_key, content_sha256)
)
"""
OPEN_STATUSES = ("starting", "started")


@dataclass(frozen=True)
class LedgerEntry:
    de_key: str
    content_sha256: str
    partition_key: str | None
    definition_key: str
    file_name: str
    row_count: int
    task_id: str | None
    status: str
    started_at: datetime

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class ImportLedger:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        con.execute(DDL)

    def find(self, de_key: str, content_sha256: str) -> LedgerEntry | None:
        row = self.con.execute(
            "SELECT de_key, content_sha256, partition_key, definition_key, file_name, row_count, task_id, status, "
            "started_at FROM import_ledger WHERE de_key = ? AND content_sha256 = ?",
            [de_key, content_sha256],
        ).fetchone()
        return LedgerEntry(*row) if row else None

    def begin(
        self,
        de_key: str,
        content_sha256: str,
        partition_key: str | None,
        definition_key: str,
        file_name: str,
        row_count: int,
    ) -> None:
        """Record the intent to import, before MCE is asked to (replacing a failed attempt)."""
        self.con.execute(
            "INSERT OR REPLACE INTO import_ledger (de_key, content_sha256, partition_key, definition_key, file_name, "
            "row_count, status, started_at) VALUES (?, ?, ?, ?, ?, ?, 'starting', ?)",
            [de_key, content_sha256, partition_key, definition_key, file_name, row_count, _now()],
        )

    def not_started(self, de_key: str, content_sha256: str, reason: str) -> None:
        """MCE answered the start with a refusal: nothing was imported, a later run may start it."""
        self.con.execute(
            "UPDATE import_ledger SET status = 'not_started', message = ? WHERE de_key = ? AND content_sha256 = ?",
            [reason[:500], de_key, content_sha256],
        )

    def started(self, de_key: str, content_sha256: str, task_id: str) -> None:
        self.con.execute(
            "UPDATE import_ledger SET task_id = ?, status = 'started' WHERE de_key = ? AND content_sha256 = ?",
            [task_id, de_key, content_sha256],
        )

    def finish(self, de_key: str, content_sha256: str, result: ImportResult, message: str = "") -> None:
        self.con.execute(
            "UPDATE import_ledger SET task_id = ?, status = ?, total_rows = ?, successful = ?, errors = ?, "
            "duplicates = ?, message = ?, finished_at = ? WHERE de_key = ? AND content_sha256 = ?",
            [
                result.task_id,
                result.status,
                result.total_rows,
                result.successful,
                result.errors,
                result.duplicates,
                message,
                _now(),
                de_key,
                content_sha256,
            ],
        )

    def in_flight(self, de_key: str) -> list[str]:
        """Content hashes of the data extension's imports that are starting or started."""
        return [
            str(r[0])
            for r in self.con.execute(
                "SELECT content_sha256 FROM import_ledger WHERE de_key = ? AND list_contains(?, status)",
                [de_key, list(OPEN_STATUSES)],
            ).fetchall()
        ]

    def imports_of(self, de_key: str) -> list[tuple[str, str, int, str]]:
        """(content hash, task id, rows, status) of every import into a data extension."""
        return [
            tuple(r)
            for r in self.con.execute(
                "SELECT content_sha256, task_id, row_count, status FROM import_ledger WHERE de_key = ? ORDER BY started_at",
                [de_key],
            ).fetchall()
        ]
