"""The synthetic CRM generator: seeded, byte-identical, realistic, and stageable."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

from nto_etl.cli import main
from nto_etl.contracts import MODELS
from nto_etl.generate import generate
from nto_etl.staging import read_staged, stage_export

FOLDER_DATASET = {
    "contacts": "contacts",
    "new_customers": "new_customers",
    "page_views": "web_page_views",
    "newsletter_subscriptions": "newsletter_subscriptions",
    "event_registrations": "event_registrations",
}


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.csv"))
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    assert (
        main(["generate", "--rows", "800", "--seed", "5", "--out", str(tmp_path / "a"), "--days", "2"]) == 0
    )
    assert (
        main(["generate", "--rows", "800", "--seed", "5", "--out", str(tmp_path / "b"), "--days", "2"]) == 0
    )
    generate(800, 6, tmp_path / "c", date(2026, 11, 1), 2)
    a, b, c = digests(tmp_path / "a"), digests(tmp_path / "b"), digests(tmp_path / "c")
    assert len(a) == 10
    assert a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a)


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crm")
    generate(5000, 3, out, date(2026, 11, 1), 3)
    return out


def test_every_file_stages_with_a_small_share_of_realistic_bad_rows(crm: Path, tmp_path: Path) -> None:
    bad_checks: set[str] = set()
    for path in sorted(crm.rglob("*.csv")):
        model = MODELS[FOLDER_DATASET[path.parent.name]]
        result = stage_export(str(path), model, tmp_path / path.parent.name)
        assert result.rows_read > 0
        assert result.rows_rejected <= max(2, 0.02 * result.rows_read), (path.name, result.failures)
        bad_checks |= {key.split(": ")[-1] for key in result.failures}
    assert {"mce_syntax(rule=email)", "str_length(None, 50)", "not_nullable", "duplicate_key"} <= bad_checks


def test_the_crm_grows_and_changes_day_by_day(crm: Path, tmp_path: Path) -> None:
    days = sorted((crm / "crm" / "contacts").glob("*.csv"))
    keys: set[str] = set()
    for day in days:
        staged = read_staged(
            stage_export(str(day), MODELS["contacts"], tmp_path / day.stem).staged_path, MODELS["contacts"]
        )
        keys |= set(staged["subscriber_key"])
    assert 4900 <= len(keys) <= 5000  # every contact appears (a few only in rejected rows)
    later = read_staged(
        stage_export(str(days[1]), MODELS["contacts"], tmp_path / "d2").staged_path, MODELS["contacts"]
    )
    assert (
        later["modified_at"].dt.date == date(2026, 11, 2)
    ).all()  # only what changed or was created that day
    assert (later["created_at"].dt.date < date(2026, 11, 2)).any()  # changed details of existing contacts
    texts = (crm / "crm" / "contacts" / days[0].name).read_text(encoding="utf-8")
    assert "Chloé" in texts or "Zoë" in texts  # non-ASCII names
    assert '"0' in texts  # leading zeros (postal codes, phones) as text
