"""The DuckDB engine's SQL screen against pandera: same staged bytes, same rejects, on any input.

The screen may send a valid row to pandera (it is stricter on purpose) but must never stage a
row pandera refuses, nor type a value differently. Every test here compares the two engines
end to end, on files built to sit on the edges of the rules.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pandera.pandas as pa
import pytest
from pandera.typing import Series

from nto_etl.contracts import MODELS, Contact, de_fields
from nto_etl.contracts.fields import mce_field
from nto_etl.contracts.screen import compile_screen
from nto_etl.generate import generate
from nto_etl.staging import StageResult, stage_export

CORPUS = Path(__file__).with_name("corpus")
READABLE = [c for c in json.loads((CORPUS / "manifest.json").read_text()) if "error" not in c]

# Values on and around the edges of each kind of rule; the valid ones come first.
DATES = [
    "2026-11-27 09:30:00",
    "2026-11-27T09:30:00",
    "2026-11-27",
    "2026-11-27 09:30:00.5",
    "2026-11-27 09:30:00.123456",
    "1999-12-31 23:59:59",
    "2026-11-27 09:30:00.123456789",
    "2026-11-27 09:30",
    "2026-11-27T09:30:00Z",
    "2026-11-27 09:30:00+02:00",
    " 2026-11-27 09:30:00",
    "2026-11-27 09:30:00 ",
    "2026-1-7",
    "20261127",
    "2026/11/27",
    "11/27/2026 09:30:00",
    "2026-02-30 10:00:00",
    "2026-11-27 24:00:00",
    "2026-11-27 23:59:60",
    "1600-01-01",
    "2300-01-01",
    "\u0662\u0660\u0662\u0666-11-27",
    "tomorrow",
    "2026-11-27\n09:30:00",
    # Around the screen's own rendering check: DuckDB's special values and the year bounds.
    "infinity",
    "-infinity",
    "epoch",
    "1699-12-31 23:59:59",
    "1700-01-01 00:00:00",
    "2199-12-31 23:59:59.999999",
    "2200-01-01 00:00:00",
    "0999-01-01 00:00:00",
    "12026-01-01 00:00:00",
    "2026-11-27 09:30:00.500000",
]
NUMBERS = [
    "5",
    "+5",
    "-0",
    "00012",
    "20",
    "1",
    " 5",
    "5 ",
    "5.0",
    "5.5",
    "1e1",
    "\u0665",
    "0x10",
    "21",
    "0",
    "-3",
    "99999999999",
    "2147483648",
    "five",
    "5\n",
    "-2147483648",
    "2147483647",
    "-2147483649",
    "inf",
    "nan",
    "-",
]
DECIMALS = [
    "12.34",
    "0",
    "-0.5",
    "99999999.99",
    "1",
    "12.345",
    "1e2",
    " 3",
    ".5",
    "5.",
    "100000000",
    "-1",
    "3,50",
    "NaN",
    "inf",
]
BOOLEANS = [
    "true",
    "false",
    "1",
    "0",
    "yes",
    "no",
    "Y",
    "n",
    "TRUE",
    " true ",
    "\ttrue",
    "maybe",
    "01",
    "t",
    "1.0",
]
TEXTS = [
    "US",
    "en-US",
    "web",
    "store",
    "a",
    "Ann",
    "US\n",
    "us",
    "\uff35\uff33",
    "U S",
    "en_US",
    "EN",
    "fr",
    "call_center",
    "event",
    "Web",
    "Chloé",
    "李",
    "x" * 17,
    "x" * 18,
    "x" * 19,
    "é" * 50,
    "é" * 51,
    "abc123",
    "abc-123",
    "+1 503-555-0100",
    "0123 456 789",
    "12",
    "(555) 555-0100 ext",
    "line\nbreak",
    "  padded  ",
    "\u00a0",
    '"quoted"',
    "a,b",
    "٣٤٥٦٧٨",
    "0" * 64,
    "f" * 64,
    "F" * 64,
    "g" * 64,
]
EMAILS = [
    "a@b.co",
    "ann.lee@example.com",
    "o'brien@example.ie",
    "a@b.co\n",
    "a b@c.co",
    "ä@b.co",
    "a@b",
    "a@-b.co",
    "a..b@c.co",
    "@b.co",
    "a@b.c-o.uk",
    "x" * 250 + "@b.co",
]


def candidates(field_type: str) -> list[str]:
    return {
        "Date": DATES,
        "Number": NUMBERS,
        "Decimal": DECIMALS,
        "Boolean": BOOLEANS,
        "EmailAddress": EMAILS,
    }.get(field_type, TEXTS)


VALID = {
    "Date": "2026-11-27 09:30:00",
    "Number": "2",
    "Decimal": "12.34",
    "Boolean": "true",
    "EmailAddress": "a@b.co",
    "Phone": "+1 503-555-0100",
    "Locale": "en-US",
}
VALID_BY_NAME = {"country": "US", "source": "web", "event_type": "Open", "email_sha256": "f" * 64}


def edge_file(model: type[pa.DataFrameModel], path: Path, rows: int, seed: int) -> Path:
    """Valid rows with, in about half of them, one cell replaced by an edge value or left empty;
    about a third of the keys repeat."""
    rng = random.Random(seed)
    fields = de_fields(model)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([f.name for f in fields])
        for _ in range(rows):
            record = [VALID_BY_NAME.get(f.name, VALID.get(f.field_type, "ab1")) for f in fields]
            for i, f in enumerate(fields):
                if f.is_primary_key:
                    record[i] = f"K{rng.randrange(rows)}"
            if rng.random() < 0.5:
                i = rng.randrange(len(fields))
                record[i] = "" if rng.random() < 0.15 else rng.choice(candidates(fields[i].field_type))
            writer.writerow(record)
    return path


def both_engines(source: Path, model: type[pa.DataFrameModel], out: Path) -> tuple[StageResult, StageResult]:
    fast = stage_export(str(source), model, out / "duckdb", engine="duckdb")
    exact = stage_export(str(source), model, out / "pandas", engine="pandas")
    assert fast.staged_path.read_bytes() == exact.staged_path.read_bytes()
    assert fast.rejects_path.read_bytes() == exact.rejects_path.read_bytes()
    assert (fast.rows_read, fast.rows_staged, fast.rows_rejected, fast.duplicates_superseded) == (
        exact.rows_read,
        exact.rows_staged,
        exact.rows_rejected,
        exact.duplicates_superseded,
    )
    assert fast.failures == exact.failures
    assert exact.engine == "pandas"
    return fast, exact


def test_every_contract_has_a_screen() -> None:
    for name, model in MODELS.items():
        assert compile_screen(model) is not None, name


@pytest.mark.parametrize("dataset", sorted(MODELS))
def test_engines_agree_on_edge_values(dataset: str, tmp_path: Path) -> None:
    model = MODELS[dataset]
    source = edge_file(model, tmp_path / f"{dataset}.csv", 1500, seed=len(dataset))
    fast, _ = both_engines(source, model, tmp_path)
    assert fast.engine == "duckdb"
    # The file exercises all three outcomes: screened, judged by pandera and staged, refused.
    assert fast.rows_staged > fast.rows_via_pandera > 0
    assert fast.rows_rejected > 0
    assert fast.rows_read - fast.rows_via_pandera > fast.rows_staged // 2


def test_words_that_look_like_nulls_are_text(tmp_path: Path) -> None:
    header = ",".join(f.name for f in de_fields(Contact))
    row = "C1,K1,c1@example.com,NA,Null,,N/A,nan,,,US,en-US,2026-01-01 09:00:00,2026-01-02 09:00:00"
    source = tmp_path / "contacts.csv"
    source.write_text(f"{header}\n{row}\n", encoding="utf-8")
    fast, _ = both_engines(source, Contact, tmp_path)
    staged = list(csv.reader(fast.staged_path.read_text(encoding="utf-8").splitlines()))[1]
    assert staged[3:8] == ["NA", "Null", "", "N/A", "nan"]


def test_rows_pandera_accepts_after_the_screen_refused_them_are_staged_in_file_order(tmp_path: Path) -> None:
    header = ",".join(f.name for f in de_fields(Contact))
    plain = "C{0},K{0},c{0}@example.com,Ann,Lee,,,,,,US,en-US,2026-01-01 09:00:00,{1}"
    lines = [header]
    for i in range(1, 7):
        # Nanoseconds: valid for pandas, beyond what the screen parses.
        modified = "2026-01-02 09:00:00.000000001" if i % 3 == 0 else "2026-01-02 09:00:00"
        lines.append(plain.format(i, modified))
    source = tmp_path / "contacts.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fast, _ = both_engines(source, Contact, tmp_path)
    assert (fast.rows_via_pandera, fast.rows_staged) == (2, 6)
    staged = list(csv.reader(fast.staged_path.read_text(encoding="utf-8").splitlines()))[1:]
    assert [row[0] for row in staged] == [f"C{i}" for i in range(1, 7)]


@pytest.mark.parametrize("case", READABLE, ids=[c["name"] for c in READABLE])
def test_engines_agree_on_the_bad_input_corpus(case: dict[str, Any], tmp_path: Path) -> None:
    both_engines(CORPUS / case["name"], MODELS[case["dataset"]], tmp_path)


def test_engines_agree_on_a_generated_export(tmp_path: Path) -> None:
    from datetime import date

    generate(4000, 5, tmp_path / "gen", date(2026, 11, 1), 1, only={"contacts"}, progress=False)
    [source] = (tmp_path / "gen" / "crm" / "contacts").glob("*.csv")
    fast, _ = both_engines(source, Contact, tmp_path)
    assert fast.engine == "duckdb"
    assert fast.rows_rejected > 0 and fast.duplicates_superseded > 0


def test_a_rule_the_screen_does_not_know_sends_every_row_to_pandera(tmp_path: Path) -> None:
    class Odd(pa.DataFrameModel):
        code: Series[str] = mce_field("A code", max_length=10, primary_key=True)
        note: Series[str] = mce_field("Checked by a method the screen cannot translate", max_length=10)

        @pa.check("note")
        def not_three_letters(cls, values: Series[str]) -> Series[bool]:
            return values.str.len() != 3

        class Config:
            strict = True
            coerce = True
            metadata = {"dataset": "odd"}

    assert compile_screen(Odd) is None
    source = tmp_path / "odd.csv"
    source.write_text("code,note\nA,four\nB,one\n", encoding="utf-8")
    result = stage_export(str(source), Odd, tmp_path / "out")
    assert (result.engine, result.rows_staged, result.rows_rejected) == ("pandas", 1, 1)


@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("last_break", [True, False], ids=["ends-with-break", "no-final-break"])
@pytest.mark.parametrize("broken_value", [False, True], ids=["one-line-values", "value-with-break"])
def test_rejected_rows_are_reported_on_their_line(
    ending: str, last_break: bool, broken_value: bool, tmp_path: Path
) -> None:
    # The DuckDB engine counts a file's lines while hashing it; only when they are more than its
    # rows does it look for breaks inside values. Both ways must give every row its real line.
    header = ",".join(f.name for f in de_fields(Contact))
    plain = "C{0},K{0},{1},Ann,{2},,,,,,US,en-US,2026-01-01 09:00:00,2026-01-02 09:00:00"
    rows = []
    for i in range(1, 9):
        email = f"c{i} at example.com" if i in (3, 8) else f"c{i}@example.com"
        last = '"Lee\nJr"' if broken_value and i == 2 else "Lee"
        rows.append(plain.format(i, email, last))
    text = ending.join([header, *rows]) + (ending if last_break else "")
    source = tmp_path / "contacts.csv"
    source.write_bytes(text.encode("utf-8"))
    fast, _ = both_engines(source, Contact, tmp_path)
    with fast.rejects_path.open(newline="", encoding="utf-8") as handle:
        rejected = [(int(r["row"]), int(r["line"])) for r in csv.DictReader(handle)]
    shift = 1 if broken_value else 0  # row 2's value spans two lines
    assert rejected == [(3, 4 + shift), (8, 9 + shift)]
