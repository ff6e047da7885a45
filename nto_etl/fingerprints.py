"""Fingerprints of an export's raw rows: how a staging skips the rows MCE already has.

A daily full export repeats, unchanged, almost every row MCE has imported before. A row's
staged text depends only on its raw values and the contract's rules, so a row whose raw
values are those of a row MCE already holds needs no validating, rendering or uploading.
Each row is fingerprinted as staging reads it: DuckDB's `hash()` of the rules' identity and
the row's raw values. The delta records, beside the MD5 of each row MCE holds, the
fingerprint of the raw row it was staged from (`row_hashes.raw_fp`); the next staging
skips the rows whose fingerprint is among them.

The rules' identity covers the screen, the rendering and the versions of DuckDB (its `hash()`
is not promised to stay the same across versions), pandas and pandera (which decide the rows
the screen does not pass): a change to any of them makes every fingerprint new, so every
row is validated again, and the delta records the new fingerprints for the days after.

    known = known_fingerprints(con, "NTO_Contacts")  # what MCE holds (nto_etl.delta)
    result = stage_export(url, Contact, out, known=known)
    read_fingerprints(result.staged_path)           # the staged rows' fingerprints, in order
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pandera
import pyarrow as arrow
from duckdb.func import PythonUDFType

from nto_etl.sql import ident, literal

SUFFIX = ".fingerprints.npz"


def fingerprints_file(staged: Path) -> Path:
    """Where a staged file's fingerprints are kept (`StagedFingerprints`)."""
    return staged.with_name(staged.stem + SUFFIX)


@dataclass(frozen=True)
class StagedFingerprints:
    """What a staging that fingerprinted its rows leaves beside its staged file."""

    values: np.ndarray  # one per staged row, in the file's order
    skipped: int  # rows of the export left out because MCE held them: the file is not the whole export


def rules_identity(*parts: str) -> str:
    """A short name for the rules a row is staged under (the SQL that screens and renders it)."""
    versions = [duckdb.__version__, pd.__version__, pandera.__version__]
    digest = hashlib.sha256("\x1f".join([*versions, *parts]).encode())
    return digest.hexdigest()[:16]


def fingerprint_sql(columns: Iterable[str], rules: str) -> str:
    """SQL of a row's fingerprint over its raw text columns (nulls count: hash(NULL) is not hash(''))."""
    return f"hash({literal(rules)}, {', '.join(ident(c) for c in columns)})"


@dataclass(frozen=True)
class Fingerprints:
    """The fingerprints of the raw rows MCE holds for a data extension."""

    values: np.ndarray

    @classmethod
    def from_array(cls, values: np.ndarray | list[int]) -> Fingerprints:
        return cls(np.asarray(values, dtype=np.uint64))

    def __len__(self) -> int:
        return len(self.values)

    def register(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """`name(fp)` in SQL: whether the fingerprint is one of these. A function keeps the query
        a projection, so its rows stay in the file's order (a join would not). pandas' index
        looks them up in a hash table: a million lookups cost about nothing, where a binary
        search of the sorted array took a third of a second."""
        index = pd.Index(self.values)
        if not index.is_unique:  # one per row MCE holds, and rows differ by their keys: a collision
            index = index.unique()

        def contains(fingerprints: arrow.Array) -> arrow.Array:
            return arrow.array(index.get_indexer(fingerprints.to_numpy(zero_copy_only=False)) >= 0)

        con.create_function(name, contains, ["UBIGINT"], "BOOLEAN", type=PythonUDFType.ARROW)


def write_fingerprints(staged: Path, values: np.ndarray, skipped: int) -> None:
    path = fingerprints_file(staged)
    part = path.with_name(path.name + ".part")
    with part.open("wb") as handle:
        np.savez(handle, values=np.asarray(values, dtype=np.uint64), skipped=np.array(skipped))
    part.replace(path)


def read_fingerprints(staged: Path) -> StagedFingerprints | None:
    """What the staged file's staging wrote beside it; None when it fingerprinted nothing (or
    the file beside it is older than the staged file). The delta checks that there is one
    fingerprint per staged row."""
    path = fingerprints_file(staged)
    if not path.exists() or path.stat().st_mtime < staged.stat().st_mtime:
        return None
    with np.load(path, allow_pickle=False) as stored:
        return StagedFingerprints(stored["values"].astype(np.uint64), int(stored["skipped"]))
