"""How the pipeline opens the DuckDB warehouse: with a memory limit, beyond which DuckDB spills to disk.

Without one DuckDB may take 80% of the machine; the pipeline promises to stage and import a
10M-row export within 1.5 GB (docs/PERFORMANCE.md), which holds with 1 GB here.
Every connection to one file must use the same settings: always go through here.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

MEMORY_VARIABLE = "NTO_DUCKDB_MEMORY"
DEFAULT_MEMORY = "1GB"


Config = dict[str, str | bool | int | float | list[str]]  # what duckdb.connect takes


def warehouse_config() -> Config:
    return {"memory_limit": os.environ.get(MEMORY_VARIABLE, DEFAULT_MEMORY)}


def connect(database: Path | str) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(database), config=warehouse_config())
