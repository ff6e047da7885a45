"""The local MCE's persistent state: one DuckDB file in the state directory.

`objects` holds every API object (data extensions, their fields, import definitions,
import results, ...) as a flat JSON body of its retrievable properties; each data
extension's rows live in a typed table of their own. One lock serialises writers.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    object_type VARCHAR NOT NULL,
    customer_key VARCHAR,
    object_id VARCHAR NOT NULL,
    body JSON NOT NULL,
    seq BIGINT NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS object_seq;
CREATE SEQUENCE IF NOT EXISTS task_seq START 130040000;
"""


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = duckdb.connect(str(path))
        self._con.execute(SCHEMA)
        self._lock = threading.RLock()

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection, held exclusively by this thread for the block."""
        with self._lock:
            yield self._con

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            self._con.execute("BEGIN")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def next_task_id(self) -> int:
        with self.connection() as con:
            row = con.execute("SELECT nextval('task_seq')").fetchone()
            assert row is not None
            return int(row[0])

    def put(self, object_type: str, body: dict[str, Any], *, object_id: str | None = None) -> str:
        object_id = object_id or str(uuid.uuid4())
        body = {**body, "ObjectID": object_id}
        with self.connection() as con:
            con.execute(
                "INSERT INTO objects SELECT ?, ?, ?, ?, nextval('object_seq')",
                [object_type, body.get("CustomerKey"), object_id, json.dumps(body, default=str)],
            )
        return object_id

    def replace(self, object_type: str, object_id: str, body: dict[str, Any]) -> None:
        with self.connection() as con:
            con.execute(
                "UPDATE objects SET body = ?, customer_key = ? WHERE object_type = ? AND object_id = ?",
                [
                    json.dumps({**body, "ObjectID": object_id}, default=str),
                    body.get("CustomerKey"),
                    object_type,
                    object_id,
                ],
            )

    def remove(self, object_type: str, object_id: str) -> None:
        with self.connection() as con:
            con.execute(
                "DELETE FROM objects WHERE object_type = ? AND object_id = ?", [object_type, object_id]
            )

    def get(self, object_type: str, customer_key: str) -> dict[str, Any] | None:
        """The object with this external key (MCE matches keys case-insensitively)."""
        with self.connection() as con:
            row = con.execute(
                "SELECT body FROM objects WHERE object_type = ? AND lower(customer_key) = lower(?) "
                "ORDER BY seq LIMIT 1",
                [object_type, customer_key],
            ).fetchone()
        return json.loads(row[0]) if row else None

    def find(
        self, object_type: str, where: str = "TRUE", params: list[Any] | None = None
    ) -> list[dict[str, Any]]:
        """Objects of a type matching a compiled filter (see `filters.compile_filter`)."""
        with self.connection() as con:
            rows = con.execute(
                f"SELECT body FROM objects WHERE object_type = ? AND ({where}) ORDER BY seq",
                [object_type, *(params or [])],
            ).fetchall()
        return [json.loads(r[0]) for r in rows]
