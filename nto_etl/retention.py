"""How long the pipeline's own copies of the data are kept on disk.

Every day leaves a staged file, a rejects file and a delta file per dataset (and the staged
rows' fingerprints, `.npz`): for 1M contacts about 200 MB a day, with personal data in each, and nothing needs them once the day's
imports and loads are done (a re-run of an old day stages its export again). Files not
modified for `NTO_KEEP_FILES_DAYS` days (default 30) are removed. The age is the file's own,
not the day in its name, so a backfill's freshly staged old day is never removed under it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from nto_etl.mce.settings import env_number

KEEP_VARIABLE = "NTO_KEEP_FILES_DAYS"
DEFAULT_KEEP_DAYS = "30"
KEPT_SUFFIXES = (".csv", ".npz", ".part")  # what staging and the sync write there, nothing else


def keep_days(env: Mapping[str, str] = os.environ) -> float:
    return env_number(env, KEEP_VARIABLE, DEFAULT_KEEP_DAYS, float)


def remove_old_files(folder: Path, days: float, now: float | None = None) -> list[Path]:
    """Remove the files directly in `folder` last modified more than `days` days ago; returns them."""
    if not folder.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - days * 86400
    removed = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name.endswith(KEPT_SUFFIXES) and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
