"""The import ledger: every import into MCE, keyed on (data extension, content hash) and on the task id.

It is what makes "never import the same content twice" hold. A run claims the content's
import (claimed) before it uploads, marks it starting before the upload is put in place
and MCE is asked, records MCE's task id as soon as MCE returns it (started), and closes it
with MCE's counts (Completed / Error). A run that finds another's entry follows that import instead of
starting its own, and a run that crashed in between is followed the same way.

A claim is a compare-and-set on the entry as the run last read it (its status and
`started_at`): two runs that read the same entry cannot both claim it.
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
OPEN_STATUSES = ("claimed", "starting", "started")


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

    def claim(
        self,
        de_key: str,
        content_sha256: str,
        partition_key: str | None,
        definition_key: str,
        file_name: str,
        row_count: int,
        seen: LedgerEntry | None,
    ) -> datetime | None:
        """Claim the content's import for the calling run, if the entry is still `seen` (as the
        run read it; None: there was none). Returns the claim's time, which `confirm` takes;
        None when another run changed the entry first."""
        now = _now()
        values = [partition_key, definition_key, file_name, row_count, now]
        try:
            if seen is None:
                self.con.execute(
                    "INSERT INTO import_ledger (partition_key, definition_key, file_name, row_count, started_at, "
                    "de_key, content_sha256, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'claimed')",
                    [*values, de_key, content_sha256],
                )
                return now
            changed = self.con.execute(
                "UPDATE import_ledger SET partition_key = ?, definition_key = ?, file_name = ?, row_count = ?, "
                "started_at = ?, status = 'claimed', task_id = NULL, total_rows = NULL, successful = NULL, "
                "errors = NULL, duplicates = NULL, message = NULL, finished_at = NULL "
                "WHERE de_key = ? AND content_sha256 = ? AND status = ? AND started_at = ?",
                [*values, de_key, content_sha256, seen.status, seen.started_at],
            ).fetchall()
        except (duckdb.ConstraintException, duckdb.TransactionException):
            return None  # another run's entry, written at the same moment
        return now if changed[0][0] else None

    def confirm(self, de_key: str, content_sha256: str, claimed_at: datetime) -> datetime | None:
        """The claim made at `claimed_at` becomes `starting`: the upload is put in place and MCE
        asked next. None when the claim is no longer this run's (another run found it silent
        and took it over)."""
        now = _now()
        changed = self.con.execute(
            "UPDATE import_ledger SET status = 'starting', started_at = ? "
            "WHERE de_key = ? AND content_sha256 = ? AND status = 'claimed' AND started_at = ?",
            [now, de_key, content_sha256, claimed_at],
        ).fetchall()
        return now if changed[0][0] else None

    def release(self, de_key: str, content_sha256: str, claimed_at: datetime, reason: str) -> None:
        """Give up a claim (or its confirmation) before MCE was asked: the upload failed, and
        the next run need not wait."""
        self.con.execute(
            "UPDATE import_ledger SET status = 'not_started', message = ? WHERE de_key = ? "
            "AND content_sha256 = ? AND status IN ('claimed', 'starting') AND started_at = ?",
            [reason[:500], de_key, content_sha256, claimed_at],
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
