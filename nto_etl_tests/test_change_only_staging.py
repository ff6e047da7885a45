"""Staging that skips the rows MCE already holds: the same staged rows and rejects as a full
staging, less those rows; and through the real client, a daily full export that uploads only
what changed. The delta's recording of the fingerprints is tested in test_delta."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from unittest import mock

import duckdb
import pytest
from sshfs import SSHFileSystem

from nto_etl import staging
from nto_etl.config import default_config
from nto_etl.contracts import Contact
from nto_etl.delta import known_fingerprints
from nto_etl.fingerprints import Fingerprints, fingerprints_file, read_fingerprints
from nto_etl.mce.client import MceClient
from nto_etl.staging import stage_export
from nto_etl.sync import PartialStagingError, sync_partition
from nto_etl_tests.helpers import CONTACTS_HEADER, all_rows, contact, kept_open, write_export

MULTI_LINE = '"12 Main St\nApt 4"'  # a value with a line break: the lines after it shift
DAY_1 = [
    CONTACTS_HEADER,
    contact("C1"),
    contact("C2", street=MULTI_LINE),
    contact("C3"),
    contact("C4", modified_at="2026-01-03 09:00:00"),
    contact("C5", email="not-an-email"),
    contact("C6"),
]
DAY_2 = [
    CONTACTS_HEADER,
    contact("C1"),  # held: skipped, but a newer copy of its key comes last
    contact("C2", street=MULTI_LINE),  # held: skipped, and its line break still counts
    contact("C3", first_name="Bea", modified_at="2026-01-05 09:00:00"),  # changed
    contact("C4", modified_at="2026-01-03 09:00:00"),  # held, and the latest of its key
    contact("C4", modified_at="2026-01-02 08:00:00"),  # an older copy: rejected against the held row
    contact("C5", email="not-an-email"),  # never held: rejected again
    contact("C6"),  # held
    contact("C7"),  # new
    contact("C8", email="bad"),
    contact("C1", first_name="Zed", modified_at="2026-01-09 09:00:00"),  # supersedes the held C1
]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:]


@pytest.mark.parametrize("in_memory", [True, False], ids=["rows in memory", "rows in a table"])
def test_a_staging_skips_the_rows_mce_holds_and_rejects_as_a_full_one(
    tmp_path: Path, in_memory: bool
) -> None:
    with mock.patch.object(staging, "_in_memory", return_value=in_memory):
        first = stage_export(
            str(write_export(tmp_path, DAY_1, name="d1.csv")),
            Contact,
            tmp_path / "one",
            known=Fingerprints.from_array([]),
        )
        held = read_fingerprints(first.staged_path).values  # type: ignore[union-attr]
        assert len(held) == first.rows_staged == 5  # every staged row fingerprinted, none skipped
        export = write_export(tmp_path, DAY_2, name="d2.csv")
        full = stage_export(str(export), Contact, tmp_path / "full")
        skipping = stage_export(str(export), Contact, tmp_path / "skip", known=Fingerprints.from_array(held))

    assert skipping.rows_known == 4 and skipping.rows_read == full.rows_read == 10
    assert skipping.rejects_path.read_bytes() == full.rejects_path.read_bytes()
    assert (skipping.rows_rejected, skipping.duplicates_superseded) == (
        full.rows_rejected,
        full.duplicates_superseded,
    )
    before = set(lines(first.staged_path))
    assert lines(skipping.staged_path) == [line for line in lines(full.staged_path) if line not in before]
    assert [line.split(",")[1] for line in lines(skipping.staged_path)] == ['"KC3"', '"KC7"', '"KC1"']
    fingerprinted = read_fingerprints(skipping.staged_path)
    assert fingerprinted is not None and fingerprinted.skipped == 4
    assert len(fingerprinted.values) == 3 and not set(fingerprinted.values) & set(held)
    assert full.rows_known == 0 and not fingerprints_file(full.staged_path).exists()


def test_rows_staged_under_other_rules_are_validated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = stage_export(
        str(write_export(tmp_path, DAY_1, name="d1.csv")),
        Contact,
        tmp_path / "one",
        known=Fingerprints.from_array([]),
    )
    held = Fingerprints.from_array(read_fingerprints(first.staged_path).values)  # type: ignore[union-attr]
    export = write_export(tmp_path, DAY_2, name="d2.csv")
    assert stage_export(str(export), Contact, tmp_path / "same", known=held).rows_known == 4
    monkeypatch.setattr(staging, "STAGED_DATE_FORMAT", "%Y-%m-%d %H:%M:%S")  # the rendering changed
    again = stage_export(str(export), Contact, tmp_path / "other", known=held)
    assert again.rows_known == 0 and again.rows_staged == 6


def test_a_daily_full_export_uploads_only_what_changed(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, key: str
) -> None:
    """Through the real client to the local MCE: the first import stages everything, the next day
    fingerprints every row, the day after skips the rows MCE holds; after an upgrade that
    changes every fingerprint, one day stages every row again; MCE ends with every row."""
    export = replace(default_config().export("contacts"), de_key=key, de_name=key)
    days = {
        "2026-11-01": [CONTACTS_HEADER, *(contact(f"C{i}") for i in range(1, 7))],
        "2026-11-02": [
            CONTACTS_HEADER,
            *(contact(f"C{i}") for i in range(1, 6)),
            contact("C6", first_name="Bea"),
        ],
        "2026-11-03": [
            CONTACTS_HEADER,
            contact("C1", first_name="Cy", modified_at="2026-01-04 09:00:00"),
            *(contact(f"C{i}") for i in range(2, 6)),
            contact("C6", first_name="Bea"),
            contact("C7"),
        ],
    }
    con = duckdb.connect()
    outcomes = {}

    def run(day: str, rows: list[str]) -> Path:
        known = known_fingerprints(con, key, day)
        staged = stage_export(
            str(write_export(tmp_path, rows, name=f"contacts_{day}.csv")),
            Contact,
            tmp_path / "staged",
            known=known,
        )
        outcome = sync_partition(
            client, sftp, kept_open(con), export, staged.staged_path, day, tmp_path / "up"
        )
        outcomes[day] = (
            known is not None and len(known),
            staged.rows_known,
            staged.rows_staged,
            outcome.rows_uploaded,
        )
        return staged.staged_path

    for day, rows in days.items():
        staged_path = run(day, rows)
    assert outcomes == {
        "2026-11-01": (False, 0, 6, 6),  # first import: nothing fingerprinted
        "2026-11-02": (0, 0, 6, 1),  # fingerprints every row; the delta sends the changed one
        "2026-11-03": (6, 5, 2, 2),  # skips the five rows MCE holds as exported
    }
    # A full refresh sends every row: the day's staged file left five out, so it stops before any upload.
    with pytest.raises(PartialStagingError, match="left out 5 rows MCE already holds"):
        sync_partition(
            client, sftp, kept_open(con), export, staged_path, "2026-11-03", tmp_path / "up",
            full_refresh=True,
        )  # fmt: skip
    assert con.execute("SELECT count(*) FROM import_ledger").fetchall() == [(3,)]
    # After an upgrade every fingerprint is new: a day stages every row again and sends none,
    # and records the new fingerprints, so the day after skips the rows again.
    rules_identity = staging.rules_identity
    with mock.patch.object(staging, "rules_identity", lambda *parts: rules_identity(*parts, "upgraded")):
        run("2026-11-04", days["2026-11-03"])
        run("2026-11-05", days["2026-11-03"])
    assert outcomes["2026-11-04"] == (7, 0, 7, 0) and outcomes["2026-11-05"] == (7, 7, 0, 0)
    held = all_rows(client, key, ["subscriber_key", "first_name"])
    assert {k: v["first_name"] for k, v in held.items()} == {
        "KC1": "Cy", "KC2": "Ann", "KC3": "Ann", "KC4": "Ann", "KC5": "Ann", "KC6": "Bea", "KC7": "Ann"
    }  # fmt: skip
