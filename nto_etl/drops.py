"""File drops: which dated files in a folder are new or changed since the last look (for sensors).

A file still being written (the CRM's export of a large table takes minutes) must not start
a run: a file counts only once it has not changed for a while (`settled_before`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import fsspec

DATED = re.compile(r"^(?P<prefix>.+)_(?P<date>\d{4}-\d{2}-\d{2})\.(?P<ext>csv|zip)$")


@dataclass(frozen=True)
class DroppedFile:
    path: str
    prefix: str
    date: str
    size: int
    mtime: float

    @property
    def fingerprint(self) -> str:
        return f"{self.size}:{self.mtime}"


def list_dated_files(url: str, fs: Any = None, **storage_options: Any) -> list[DroppedFile]:
    """`<prefix>_<YYYY-MM-DD>.csv|.zip` files directly in `url`, with size and modification time."""
    if fs is None:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
    else:
        root = url
    if not fs.exists(root):
        return []
    found = []
    for entry in fs.ls(root, detail=True):
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        match = DATED.match(name)
        if entry.get("type") != "file" or match is None:
            continue
        mtime = entry.get("mtime") or entry.get("created") or 0
        found.append(
            DroppedFile(
                entry["name"],
                match["prefix"],
                match["date"],
                int(entry["size"]),
                float(mtime.timestamp() if hasattr(mtime, "timestamp") else mtime),
            )
        )
    return sorted(found, key=lambda f: (f.date, f.path))


def new_or_changed(
    files: list[DroppedFile], seen: dict[str, str], settled_before: float
) -> tuple[list[DroppedFile], dict[str, str]]:
    """Files whose (size, mtime) differ from the cursor's and that were last modified before
    `settled_before` (a time in seconds since the epoch), and the updated cursor. A file
    modified since is left for a later look."""
    fresh = [f for f in files if seen.get(f.path) != f.fingerprint and f.mtime <= settled_before]
    cursor = dict(seen)
    cursor.update({f.path: f.fingerprint for f in fresh})
    return fresh, cursor
