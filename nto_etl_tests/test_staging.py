"""Staging CRM exports: what real exports contain, what makes them unreadable, and what gets rejected."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import fsspec
import numpy as np
import pandas as pd
import pytest
from sshfs import SSHFileSystem

from nto_etl import staging, transfer
from nto_etl.connections import local_settings
from nto_etl.contracts import Contact, NewsletterSubscription
from nto_etl.de_specs import de_spec
from nto_etl.generate import generate
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import imports
from nto_etl.mce.client import MceClient
from nto_etl.mce_local import LocalMce
from nto_etl.staging import ExportFileError, read_staged, stage_export
from nto_etl_tests.helpers import CONTACTS_HEADER, contact, write_export


def rejects(result: object) -> list[dict[str, str]]:
    with open(result.rejects_path, newline="", encoding="utf-8") as handle:  # type: ignore[attr-defined]
        return list(csv.DictReader(handle))


def test_what_real_exports_contain_is_staged_faithfully(tmp_path: Path) -> None:
    lines = [
        CONTACTS_HEADER,
        contact(
            "C1",
            first_name="Chloé",
            last_name='"Lee, Jr."',
            street='"12 Main St\r\nApt 4"',
            postal_code="02134",
            phone="0123 456 789",
        ),
        contact("C2", first_name="李", last_name="Nguyễn", city='"Portland, OR"', postal_code="00501"),
        contact("C3", phone="", street='""', last_name=""),
    ]
    result = stage_export(str(write_export(tmp_path, lines, bom=True)), Contact, tmp_path / "out")
    assert (result.rows_read, result.rows_staged, result.rows_rejected) == (3, 3, 0)
    staged = read_staged(result.staged_path, Contact).set_index("customer_id")
    assert staged.loc["C1", "first_name"] == "Chloé"
    assert staged.loc["C1", "last_name"] == "Lee, Jr."
    assert staged.loc["C1", "street"] == "12 Main St\r\nApt 4"
    assert staged.loc["C1", "postal_code"] == "02134"
    assert staged.loc["C1", "phone"] == "0123 456 789"
    assert staged.loc["C2", "first_name"] == "李"
    assert staged.loc["C2", "city"] == "Portland, OR"
    assert staged.loc["C2", "postal_code"] == "00501"
    assert pd.isna(staged.loc["C3", "street"])  # quoted empty and empty are both null
    assert pd.isna(staged.loc["C3", "last_name"])
    text = result.staged_path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == CONTACTS_HEADER
    assert "01/01/2026 09:00:00" in text  # MCE's import date format


def test_rejects_name_row_line_column_check_and_value(tmp_path: Path) -> None:
    lines = [
        CONTACTS_HEADER,
        contact("C1", street='"two\nlines"'),  # line 2-3
        contact("C2", email="c2 at example.com"),  # line 4
        contact("C3", first_name="X" * 51, locale="english"),  # line 5
        contact("C4", modified_at="2026-02-30 10:00:00"),  # line 6
        "C5,KC5,c5@example.com,Short",  # line 7: 4 fields
        contact("C6", subscriber_key=""),  # line 8
        contact("C7"),
    ]
    result = stage_export(str(write_export(tmp_path, lines)), Contact, tmp_path / "out")
    assert (result.rows_read, result.rows_staged, result.rows_rejected) == (7, 2, 5)
    got = [(r["row"], r["line"], r["column"], r["check"], r["value"]) for r in rejects(result)]
    assert got == [
        ("2", "4", "email", "mce_syntax(rule=email)", "c2 at example.com"),
        ("3", "5", "first_name", "str_length(None, 50)", "X" * 51),
        ("3", "5", "locale", "mce_syntax(rule=locale)", "english"),
        ("3", "5", "locale", "str_length(None, 5)", "english"),
        ("4", "6", "modified_at", "coerce_dtype('datetime64[ns]')", "2026-02-30 10:00:00"),
        ("5", "7", "", "field_count(14)", "4 fields: C5,KC5,c5@example.com,Short"),
        ("6", "8", "subscriber_key", "not_nullable", ""),
    ]
    assert sorted(read_staged(result.staged_path, Contact)["customer_id"]) == ["C1", "C7"]
    assert result.failures["email: mce_syntax(rule=email)"] == 1


def test_a_file_duckdb_stops_on_is_staged_by_pandas_and_the_log_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    export = write_export(tmp_path, [CONTACTS_HEADER, contact("C1"), "C5,KC5,c5@example.com,Short"])
    with caplog.at_level("INFO", logger="nto_etl.staging"):
        result = stage_export(str(export), Contact, tmp_path / "out")
    assert result.engine == "pandas" and result.rows_rejected == 1
    [said] = [r.getMessage() for r in caplog.records if "pandas engine" in r.getMessage()]
    prefix = f"{export}: staged by the pandas engine, as DuckDB stopped reading it: "
    assert said.startswith(prefix) and "Error" in said.removeprefix(prefix)  # DuckDB's own words
    assert "\n" not in said


def test_duckdbs_reason_shows_the_exports_url_without_its_password() -> None:
    url = "sftp://crm:s3cret@crm.example/exports/contacts.csv"
    said = staging._said(duckdb.InvalidInputException(f"Could not read {url}\nmore detail"), url)
    assert said == "Could not read sftp://crm:***@crm.example/exports/contacts.csv"


def record_lines(path: Path) -> list[int]:
    """The line each record starts on, as Python's csv module reads the file (blank lines skipped)."""
    starts, after = [], 1
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        for record in reader:
            if record:
                starts.append(after)
            after = reader.line_num + 1
    return starts[1:]  # the header's is not a record's


@pytest.mark.parametrize(
    ("layout", "ending", "renumbered"),
    [
        pytest.param("rows rows", "\n", False, id="line feeds"),
        pytest.param("rows rows", "\r\n", False, id="CR LF"),
        pytest.param("rows rows-", "\n", False, id="no line feed at the end"),
        pytest.param("rows broken rows", "\r\n", False, id="CR LF inside a value"),
        pytest.param("rows broken broken rows-", "\n", False, id="line feeds inside values"),
        pytest.param("rows kept broken kept rows", "\r\n", False, id="line feeds inside staged values"),
        pytest.param("rows blank blank", "\r\n", False, id="blank lines at the end"),
        pytest.param("rows blank blank rows", "\r\n", True, id="blank lines between records"),
        pytest.param("rows broken rows", "\r", True, id="lines ended by bare CRs"),
    ],
)
@pytest.mark.parametrize(
    ("engine", "in_memory"),
    [("duckdb", True), ("duckdb", False), ("pandas", True)],
    ids=["duckdb", "duckdb table", "pandas"],
)
def test_rejects_lines_whatever_the_line_endings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    layout: str,
    ending: str,
    renumbered: bool,
    engine: str,
    in_memory: bool,
) -> None:
    """Each reject's line is where its record starts, as Python's csv module counts lines,
    whatever ends the lines and whatever line breaks the values hold. DuckDB's reader skips
    blank lines without a word: only a file whose line feeds do not add up to its records and
    their breaks is read again, by Python's csv module. The line breaks are counted as DuckDB
    reads the rows, or found in their text afterwards when staging keeps them in memory."""
    ids = iter(range(100))

    def part(name: str) -> str:
        if name.startswith("rows"):  # four records, two of them refused for their email
            return ending.join(
                contact(f"R{i}", email="bad" if i % 2 else f"r{i}@example.com")
                for i in [next(ids) for _ in range(4)]
            )
        if name == "broken":  # refused, with a line feed inside a value
            return contact(f"B{next(ids)}", email="bad", street='"12 Main St\nApt 4"')
        if name == "kept":  # staged, with line feeds inside two values
            return contact(f"K{next(ids)}", street='"12 Main St\nApt 4"', city='"North\n\nBend"')
        return ""  # a blank line

    parts = layout.split()
    text = (
        CONTACTS_HEADER
        + ending
        + ending.join(part(p) for p in parts)
        + ("" if parts[-1].endswith("-") else ending)
    )
    path = tmp_path / "contacts.csv"
    path.write_bytes(text.encode())

    exact_reads: list[str] = []
    numbered_records = staging._numbered_records
    monkeypatch.setattr(
        staging, "_numbered_records", lambda *a: exact_reads.append(a[0]) or numbered_records(*a)
    )

    monkeypatch.setattr(staging, "_in_memory", lambda size: in_memory)
    result = stage_export(str(path), Contact, tmp_path / "out", engine=engine)  # type: ignore[arg-type]

    assert result.engine == engine
    starts = record_lines(path)
    with path.open(newline="", encoding="utf-8") as handle:
        emails = [r["email"] for r in csv.DictReader(handle)]
    expected = [(str(i + 1), str(starts[i])) for i, e in enumerate(emails) if e == "bad"]
    assert [(r["row"], r["line"]) for r in rejects(result)] == expected
    assert len(expected) >= 2
    assert bool(exact_reads) is renumbered


@pytest.mark.parametrize("in_memory", [True, False], ids=["in memory", "in a table"])
def test_a_renumbered_file_renumbers_every_reject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory: bool
) -> None:
    """Line numbers are checked against the file's line feeds only once every reject is known:
    after blank lines, a repeated key's reject is renumbered with pandera's."""
    monkeypatch.setattr(staging, "_in_memory", lambda size: in_memory)
    lines = [CONTACTS_HEADER, contact("C1"), "", "", contact("C2", email="bad"), "", contact("C1")]
    path = write_export(tmp_path, lines)
    result = stage_export(str(path), Contact, tmp_path / "out")
    starts = record_lines(path)
    assert starts == [2, 5, 7]
    found = sorted((r["row"], r["line"], r["check"] == "duplicate_key") for r in rejects(result))
    assert found == [("1", "2", True), ("2", "5", False)]  # the email's


def test_lines_are_not_reported_when_the_two_readers_disagree_on_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were Python's csv module ever to count other records than DuckDB's reader, the line
    numbers it gives would be wrong: the file is refused rather than misreported."""
    path = write_export(
        tmp_path, [CONTACTS_HEADER, contact("C1"), "", contact("C2", email="bad")]
    )  # a blank line
    numbered_records = staging._numbered_records
    monkeypatch.setattr(staging, "_numbered_records", lambda *a: list(numbered_records(*a))[:-1])
    with pytest.raises(ExportFileError, match="DuckDB's reader finds 2 rows and Python's csv module 1"):
        stage_export(str(path), Contact, tmp_path / "out")
    assert not (tmp_path / "out" / "contacts.csv").exists()


def test_duplicate_keys_keep_the_last_modified_row(tmp_path: Path) -> None:
    lines = [
        CONTACTS_HEADER,
        contact("A1", subscriber_key="K9", first_name="Newest", modified_at="2026-01-05 00:00:00"),
        contact("A2", subscriber_key="K9", first_name="Oldest", modified_at="2026-01-01 00:00:00"),
        contact("A3", subscriber_key="K8", first_name="First", modified_at="2026-01-01 00:00:00"),
        contact("A4", subscriber_key="K8", first_name='"Tie, later row"', modified_at="2026-01-01 00:00:00"),
    ]
    result = stage_export(str(write_export(tmp_path, lines)), Contact, tmp_path / "out")
    assert (result.rows_staged, result.rows_rejected, result.duplicates_superseded) == (2, 0, 2)
    staged = read_staged(result.staged_path, Contact).set_index("subscriber_key")
    assert staged.loc["K9", "first_name"] == "Newest"
    assert staged.loc["K8", "first_name"] == "Tie, later row"
    assert [(r["row"], r["check"], r["value"]) for r in rejects(result)] == [
        ("2", "duplicate_key", "K9 (kept row 1)"),
        ("3", "duplicate_key", "K8 (kept row 4)"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (CONTACTS_HEADER.replace(",", ";").encode() + b"\r\n", "looks delimited by semicolons"),
        (CONTACTS_HEADER.replace(",locale", "").encode() + b"\r\n", "missing columns locale"),
        ((CONTACTS_HEADER + ",shoe_size").encode() + b"\r\n", "unknown columns shoe_size"),
        (
            CONTACTS_HEADER.replace("first_name", "firstname").encode() + b"\r\n",
            "missing columns first_name; unknown columns firstname",
        ),
        ((CONTACTS_HEADER + ",email").encode() + b"\r\n", "repeated columns email"),
        (
            (CONTACTS_HEADER + "\r\n" + contact("C1", first_name="Ren\xe9e")).encode("latin-1") + b"\r\n",
            f"not UTF-8: invalid byte 0xe9 at byte {len(CONTACTS_HEADER) + 2 + len('C1,KC1,c1@example.com,Ren')}",
        ),
        (
            (CONTACTS_HEADER + "\r\n" + contact("C1") + '\r\nC2,KC2,"unterminated').encode(),
            "may be truncated",
        ),
        (b"\r\n\r\n", "no header row"),
        (
            (CONTACTS_HEADER + ",").encode() + b"\r\n",
            r"unknown columns \(an empty name: a delimiter at the end",
        ),
        (
            (CONTACTS_HEADER + "\r\n" + contact("C1") + "\r\n" + contact("C2", first_name='"A\\"B"')).encode()
            + b"\r\n",
            r"at line 3 \(',' expected after '\"'\); a quote inside a quoted value is written twice",
        ),
    ],
)
@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_unreadable_files_raise_one_clear_error_and_stage_nothing(
    tmp_path: Path, content: bytes, message: str, engine: str
) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(content)
    with pytest.raises(ExportFileError, match=message) as info:
        stage_export(str(source), Contact, tmp_path / "out", engine=engine)  # type: ignore[arg-type]
    assert str(source) in str(info.value)
    assert not (tmp_path / "out" / "bad.csv").exists()


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
@pytest.mark.parametrize("malformed", [False, True], ids=["well formed", "with a malformed row"])
def test_spaces_around_header_names_are_not_part_of_them(
    tmp_path: Path, engine: str, malformed: bool
) -> None:
    lines = [CONTACTS_HEADER.replace(",", " , "), contact("C1"), contact("C2", email="bad")]
    if malformed:
        lines.append("C3,KC3")
    result = stage_export(str(write_export(tmp_path, lines)), Contact, tmp_path / "out", engine=engine)  # type: ignore[arg-type]
    assert read_staged(result.staged_path, Contact)["customer_id"].tolist() == ["C1"]
    got = [(r["row"], r["line"], r["check"]) for r in rejects(result)]
    assert got == [("2", "3", "mce_syntax(rule=email)")] + (
        [("3", "4", "field_count(14)")] if malformed else []
    )


def test_a_file_duckdb_refused_is_read_once_more_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's reader refused it while screening: the pandas engine goes straight to Python's
    csv module instead of letting DuckDB refuse it a second time."""
    tries: list[str] = []
    duck_iter = staging._DuckChunks.__iter__
    monkeypatch.setattr(
        staging._DuckChunks, "__iter__", lambda self: tries.append("duckdb") or duck_iter(self)
    )
    path = write_export(tmp_path, [CONTACTS_HEADER, contact("C1"), "C2,KC2"])
    result = stage_export(str(path), Contact, tmp_path / "out")
    assert (result.engine, result.rows_staged, tries) == ("pandas", 1, [])
    stage_export(str(path), Contact, tmp_path / "again", engine="pandas")
    assert tries == ["duckdb"]  # asked for the pandas engine, DuckDB's reader is tried first


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExportFileError, match="does not exist"):
        stage_export(str(tmp_path / "nope.csv"), Contact, tmp_path / "out")


def test_header_only_file_stages_zero_rows(tmp_path: Path) -> None:
    result = stage_export(str(write_export(tmp_path, [CONTACTS_HEADER])), Contact, tmp_path / "out")
    assert (result.rows_read, result.rows_staged) == (0, 0)
    assert result.staged_path.read_text().strip() == CONTACTS_HEADER


def test_booleans_are_parsed_before_validation(tmp_path: Path) -> None:
    header = "subscriber_key,email,opted_in,opt_in_date,source,modified_at"
    rows = [
        f"K{i},k{i}@example.com,{v},2026-01-01,web,2026-01-01"
        for i, v in enumerate(["true", "FALSE", "1", "0", "Yes", "n", "maybe"])
    ]
    result = stage_export(
        str(write_export(tmp_path, [header, *rows], name="subs.csv")), NewsletterSubscription, tmp_path / "o"
    )
    staged = read_staged(result.staged_path, NewsletterSubscription)
    assert staged["opted_in"].tolist() == [True, False, True, False, True, False]
    assert [(r["column"], r["value"]) for r in rejects(result)] == [("opted_in", "maybe")]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    from datetime import date

    generate(3000, 11, out, date(2026, 11, 1), 1)
    return out / "crm" / "contacts" / "contacts_2026-11-01.csv"


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 MB: DuckDB reads it on several threads, whose rows come out of order unless kept so."""
    from datetime import date

    out = tmp_path_factory.mktemp("large")
    return generate(60_000, 5, out, date(2026, 11, 1), 1, only={"contacts"})[0]


def test_rows_are_staged_in_file_order_in_memory_and_in_a_table(
    large: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept_in_memory: list[bool] = []
    real = staging.ScreenedRows

    def spy(con: duckdb.DuckDBPyConnection, *, in_memory: bool) -> staging.ScreenedRows:
        kept_in_memory.append(in_memory)
        return real(con, in_memory=in_memory)

    monkeypatch.setattr(staging, "ScreenedRows", spy)
    in_memory = stage_export(str(large), Contact, tmp_path / "memory")
    monkeypatch.setattr(staging, "_in_memory", lambda size: False)
    in_table = stage_export(str(large), Contact, tmp_path / "table")
    assert kept_in_memory == [True, False]
    assert in_memory.rows_rejected > 0
    assert in_memory.duplicates_superseded > 0
    assert in_memory.staged_path.read_bytes() == in_table.staged_path.read_bytes()
    assert in_memory.rejects_path.read_bytes() == in_table.rejects_path.read_bytes()

    with open(large, newline="", encoding="utf-8") as handle:
        source = [r["customer_id"] for r in csv.DictReader(handle)]
    set_aside = {int(r["row"]) for r in rejects(in_memory)}
    with open(in_memory.staged_path, newline="", encoding="utf-8") as handle:
        staged = [r["customer_id"] for r in csv.DictReader(handle)]
    assert staged == [cid for row, cid in enumerate(source, start=1) if row not in set_aside]


def test_chunked_and_whole_file_runs_are_identical(generated: Path, tmp_path: Path) -> None:
    whole = stage_export(str(generated), Contact, tmp_path / "whole")
    chunked = stage_export(str(generated), Contact, tmp_path / "chunked", block_bytes=16 * 1024)
    assert whole.rows_rejected > 0
    assert whole.staged_path.read_bytes() == chunked.staged_path.read_bytes()
    assert whole.rejects_path.read_bytes() == chunked.rejects_path.read_bytes()


def test_rows_a_hash_collision_selects_are_ranked_by_their_keys(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated keys are found by their hashes; were every hash a collision, the same rows stay."""
    found = stage_export(str(generated), Contact, tmp_path / "found")
    assert found.duplicates_superseded > 0

    def every_hash(con: duckdb.DuckDBPyConnection, hashes: str, params: object = None) -> np.ndarray:
        return np.unique(con.execute(f"SELECT h FROM ({hashes})").fetchnumpy()["h"])

    monkeypatch.setattr(staging, "repeated_hashes", every_hash)
    colliding = stage_export(str(generated), Contact, tmp_path / "colliding")
    assert colliding.duplicates_superseded == found.duplicates_superseded
    assert colliding.staged_path.read_bytes() == found.staged_path.read_bytes()
    assert colliding.rejects_path.read_bytes() == found.rejects_path.read_bytes()


def test_chunked_and_whole_runs_agree_on_files_with_malformed_rows(generated: Path, tmp_path: Path) -> None:
    lines = generated.read_text(encoding="utf-8").splitlines()
    lines.insert(100, "C999,short,row")
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    whole = stage_export(str(broken), Contact, tmp_path / "whole")
    chunked = stage_export(str(broken), Contact, tmp_path / "chunked", block_bytes=16 * 1024)
    assert whole.staged_path.read_bytes() == chunked.staged_path.read_bytes()
    assert whole.rejects_path.read_bytes() == chunked.rejects_path.read_bytes()
    assert any(r["check"] == "field_count(14)" and r["line"] == "101" for r in rejects(whole))


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_any_fsspec_url(generated: Path, tmp_path: Path, engine: str) -> None:
    with fsspec.open("memory://exports/contacts.csv", "wb") as handle:
        handle.write(generated.read_bytes())
    from_memory = stage_export("memory://exports/contacts.csv", Contact, tmp_path / "mem", engine=engine)  # type: ignore[arg-type]
    from_file = stage_export(generated.as_uri(), Contact, tmp_path / "file", engine=engine)  # type: ignore[arg-type]
    assert from_memory.staged_path.read_bytes() == from_file.staged_path.read_bytes()
    assert from_memory.engine == from_file.engine == engine
    assert from_memory.source_sha256 == transfer.sha256_file(generated)


def test_from_sftp_and_round_trip_through_mce(
    generated: Path, tmp_path: Path, local_mce: LocalMce, sftp: SSHFileSystem, client: MceClient, key: str
) -> None:
    """model -> DE fields -> staged CSV -> MCE import -> retrieved rows equal the validated frame."""
    transfer.upload_atomic(sftp, generated, "/Reports/crm_contacts.csv")
    _, sftp_settings = local_settings(local_mce.info)
    url = f"sftp://{sftp_settings.host}/Reports/crm_contacts.csv"
    result = stage_export(url, Contact, tmp_path / "s", storage_options=sftp_settings.connect_options())
    assert result.source_sha256 == transfer.sha256_file(generated)
    assert result.engine == "duckdb"  # DuckDB read the file through fsspec's SFTP filesystem
    validated = read_staged(result.staged_path, Contact)
    dex.create_data_extension(client, de_spec(Contact, key))
    transfer.upload_atomic(sftp, result.staged_path, f"/Import/{key}.csv")
    outcome = imports.run_import(client, imports.ImportSpec(f"{key}_i", key, f"{key}.csv"), timeout=120)
    assert (outcome.successful, outcome.errors) == (result.rows_staged, 0)
    columns = list(validated.columns)
    back = pd.concat(dex.retrieve_rows(client, key, columns)).replace({pd.NA: None})
    back["created_at"] = pd.to_datetime(back["created_at"], format="%m/%d/%Y %I:%M:%S %p")
    back["modified_at"] = pd.to_datetime(back["modified_at"], format="%m/%d/%Y %I:%M:%S %p")
    expected = validated.sort_values("subscriber_key").reset_index(drop=True)
    back = Contact.validate(back).sort_values("subscriber_key").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
