"""Import definitions run by the local MCE from its SFTP /Import folder, checked against ImportResultsSummary."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from sshfs import SSHFileSystem

from nto_etl.config import default_config
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import imports
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceConfigurationError, MceImportError, MceTimeoutError
from nto_etl.mce_local import LocalMce
from nto_etl.sync import sync_partition
from nto_etl_tests.helpers import all_rows, csv_text, kept_open, make_de, put_import_file

HEADER = ["SubscriberKey", "Email", "FirstName"]
SEED = [["A", "a@example.com", "Ann"], ["B", "b@example.com", "Bob"]]
# A update, C new, D has a bad email, E twice (the later row wins, the earlier is a duplicate).
FILE = [
    ["A", "a2@example.com", "Anna"],
    ["C", "c@example.com", "Cy"],
    ["D", "not an email", "Dee"],
    ["E", "e1@example.com", "Eve"],
    ["E", "e2@example.com", "Evie"],
]


@pytest.fixture
def seeded(client: MceClient, key: str) -> str:
    make_de(client, key)
    dex.upsert_rows(client, key, [dict(zip(HEADER, r, strict=True)) for r in SEED])
    return key


def run(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, key: str, text: str, **spec: object
) -> imports.ImportResult:
    name = f"{key}_{spec.get('update_type', 'AddAndUpdate')}.csv"
    put_import_file(sftp, tmp_path, name, text)
    options = {"allow_overwrite": spec.get("update_type") == "Overwrite", **spec}
    definition = imports.ImportSpec(f"{key}_imp", key, name, **options)  # type: ignore[arg-type]
    imports.ensure_import_definition(client, definition)
    task = imports.start_import(client, definition.customer_key)
    return imports.wait_for_import(client, task, timeout=60)


def names(client: MceClient, key: str) -> dict[str, str | None]:
    return {
        k: v["FirstName"] for k, v in all_rows(client, key, ["SubscriberKey", "FirstName", "Email"]).items()
    }


@pytest.mark.parametrize(
    ("update_type", "counts", "expected"),
    [
        ("AddAndUpdate", (5, 3, 1, 1, 0), {"A": "Anna", "B": "Bob", "C": "Cy", "E": "Evie"}),
        ("Merge", (5, 3, 1, 1, 0), {"A": "Anna", "B": "Bob", "C": "Cy", "E": "Evie"}),
        ("AddAndDoNotUpdate", (5, 2, 1, 2, 0), {"A": "Ann", "B": "Bob", "C": "Cy", "E": "Evie"}),
        ("UpdateButDoNotAdd", (5, 1, 1, 1, 2), {"A": "Anna", "B": "Bob"}),
        ("Overwrite", (5, 3, 1, 1, 0), {"A": "Anna", "C": "Cy", "E": "Evie"}),
    ],
)
def test_each_update_type(
    client: MceClient,
    sftp: SSHFileSystem,
    tmp_path: Path,
    seeded: str,
    update_type: str,
    counts: tuple[int, int, int, int, int],
    expected: dict[str, str],
) -> None:
    result = run(client, sftp, tmp_path, seeded, csv_text(HEADER, FILE), update_type=update_type)
    assert result.status == "Completed"
    assert (
        result.total_rows,
        result.successful,
        result.errors,
        result.duplicates,
        result.restricted,
    ) == counts
    assert names(client, seeded) == expected


def test_map_by_ordinal_without_header(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, seeded: str
) -> None:
    text = csv_text([], [["Z", "z@example.com", "Zed"]], delimiter="|")
    result = run(
        client, sftp, tmp_path, seeded, text, field_mapping="MapByOrdinal", header_lines=0, delimiter="|"
    )
    assert (result.status, result.successful) == ("Completed", 1)
    assert names(client, seeded)["Z"] == "Zed"


def test_manual_map_by_name_and_by_ordinal(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, seeded: str
) -> None:
    text = csv_text(["given_name", "id", "mail"], [["Quinn", "Q", "q@example.com"]])
    maps = (
        imports.FieldMap("SubscriberKey", source_ordinal=1),
        imports.FieldMap("Email", source_name="mail"),
        imports.FieldMap("FirstName", source_name="GIVEN_NAME"),
    )
    result = run(client, sftp, tmp_path, seeded, text, field_mapping="ManualMap", field_maps=maps)
    assert (result.status, result.successful) == ("Completed", 1)
    assert all_rows(client, seeded, ["SubscriberKey", "Email", "FirstName"])["Q"] == {
        "SubscriberKey": "Q",
        "Email": "q@example.com",
        "FirstName": "Quinn",
    }


def test_infer_from_headings_ignores_case_and_unknown_columns(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, seeded: str
) -> None:
    text = csv_text(["subscriberkey", "EMAIL", "Shoe size"], [["H", "h@example.com", "44"]])
    result = run(client, sftp, tmp_path, seeded, text)
    assert (result.status, result.successful, result.errors) == ("Completed", 1, 0)


def test_bad_rows_counted_and_good_rows_kept(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, key: str
) -> None:
    make_de(client, key)
    text = (
        "SubscriberKey,Email,Visits,Balance,SignupDate,OptIn\r\n"
        "G1,g1@example.com,1,10.5,2026-01-31,true\r\n"
        "G2,g2@example.com,notanumber,1,2026-01-31,false\r\n"  # bad number
        "G3,g3@example.com,3,1,2026-02-30,true\r\n"  # no such date
        "G4,g4@example.com,4,1,01/15/2026 10:00:00 AM,yes\r\n"
        'G5,"g5@example.com",5,"1,5",2026-01-31\r\n'  # too few columns: malformed line
        ",nokey@example.com,6,1,2026-01-31,true\r\n"  # missing primary key
    )
    result = run(client, sftp, tmp_path, key, text)
    assert (result.status, result.total_rows, result.successful, result.errors) == ("Completed", 6, 2, 4)
    assert sorted(all_rows(client, key, ["SubscriberKey"])) == ["G1", "G4"]


def test_errors_not_allowed_import_nothing(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, seeded: str
) -> None:
    result = run(client, sftp, tmp_path, seeded, csv_text(HEADER, FILE), allow_errors=False)
    assert result.status == "Error"
    assert result.errors == 1 and result.successful == 0
    assert names(client, seeded) == {"A": "Ann", "B": "Bob"}  # untouched
    with pytest.raises(MceImportError, match="1 of 5 rows in error"):
        imports.check_import(result, allow_errors=False)


def test_a_poll_while_the_rows_are_written_sees_the_import_ended(
    local_mce: LocalMce,
    client: MceClient,
    sftp: SSHFileSystem,
    tmp_path: Path,
    seeded: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rows and the summary that says so change together: a poll never finds the rows
    imported and the run still Processing (nor has to poll again to learn it ended)."""
    written = threading.Event()
    execute = local_mce.imports._execute

    def slow_to_report(definition: dict[str, object]) -> dict[str, int]:
        counts = execute(definition)
        written.set()
        time.sleep(0.5)  # the rows are committed, the summary not yet written
        return counts

    monkeypatch.setattr(local_mce.imports, "_execute", slow_to_report)
    put_import_file(sftp, tmp_path, f"{seeded}.csv", csv_text(HEADER, FILE))
    spec = imports.ImportSpec(f"{seeded}_imp", seeded, f"{seeded}.csv")
    imports.ensure_import_definition(client, spec)
    task = imports.start_import(client, spec.customer_key)
    assert written.wait(30)
    summary = imports.import_summary(client, task)
    assert summary is not None and summary.status == "Completed"
    assert names(client, seeded) == {"A": "Anna", "B": "Bob", "C": "Cy", "E": "Evie"}


def test_missing_file_ends_in_error(client: MceClient, seeded: str) -> None:
    spec = imports.ImportSpec(f"{seeded}_missing", seeded, "not_there.csv")
    imports.ensure_import_definition(client, spec)
    result = imports.wait_for_import(client, imports.start_import(client, spec.customer_key), timeout=30)
    assert result.status == "Error"


def test_overwrite_is_refused_unless_configured() -> None:
    with pytest.raises(MceConfigurationError, match="Overwrite erases every row"):
        imports.ImportSpec("k", "de", "f.csv", update_type="Overwrite")


def test_definition_for_unknown_destination_is_refused(client: MceClient) -> None:
    with pytest.raises(MceImportError.__mro__[1], match="not found") as info:
        imports.ensure_import_definition(client, imports.ImportSpec("x_imp", "no_such_de", "f.csv"))
    assert info.value.code == 43010


def test_redefinition_updates_in_place(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, seeded: str
) -> None:
    run(client, sftp, tmp_path, seeded, csv_text(HEADER, [["R", "r@example.com", "R1"]]))
    result = run(
        client,
        sftp,
        tmp_path,
        seeded,
        csv_text(HEADER, [["R", "r@example.com", "R2"]]),
        update_type="AddAndDoNotUpdate",
    )
    assert result.duplicates == 1
    assert names(client, seeded)["R"] == "R1"


def test_polls_grow_by_half_up_to_the_cap_and_stop_at_the_deadline(
    client: MceClient, sftp: SSHFileSystem, local_mce: LocalMce, tmp_path: Path, seeded: str
) -> None:
    put_import_file(sftp, tmp_path, f"{seeded}_poll.csv", csv_text(HEADER, [["K9", "k9@example.com", "Ivy"]]))
    definition = imports.ImportSpec(f"{seeded}_poll", seeded, f"{seeded}_poll.csv")
    imports.ensure_import_definition(client, definition)
    local_mce.imports.stuck = 1  # the run stays Processing until released
    task = imports.start_import(client, definition.customer_key)
    now, waits = [0.0], []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    try:
        with pytest.raises(MceTimeoutError, match="still Processing"):
            imports.wait_for_import(client, task, timeout=60, max_poll=5, sleep=sleep, clock=lambda: now[0])
    finally:
        local_mce.imports.release_stuck()
    assert waits[:4] == pytest.approx([0.25, 0.375, 0.5625, 0.84375])
    assert max(waits) == 5 and sum(waits) <= 60
    assert imports.wait_for_import(client, task, timeout=30).status == "Completed"


def test_a_de_key_with_characters_the_ftp_refuses_still_imports(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path
) -> None:
    """The import's file is named after the DE key; MCE's Enhanced FTP refuses : ? and the like
    in names, so those become _ in the file name (the DE keeps its key)."""
    export = replace(
        default_config().export("new_customers"), de_key="NTO:Welcome?EU", de_name="NTO Welcome EU"
    )
    staged = tmp_path / "new_customers_2026-11-09.csv"
    staged.write_text(
        "subscriber_key,email,first_name,locale,home_store,first_order_total,created_at,modified_at\r\n"
        "NTO-EU1,eu1@example.com,Cy,en-GB,Portland Pearl,10.00,11/09/2026 10:00:00,11/09/2026 10:00:00\r\n"
    )
    with duckdb.connect() as con:
        outcome = sync_partition(
            client, sftp, kept_open(con), export, staged, "2026-11-09", tmp_path / "work"
        )
    assert outcome.status == "imported" and outcome.result is not None and outcome.result.errors == 0
    [uploaded] = [f for f in sftp.ls("/Import", detail=False) if "Welcome" in f]
    assert uploaded.rsplit("/", 1)[-1].startswith("NTO_Welcome_EU_")
    assert list(all_rows(client, "NTO:Welcome?EU", ["subscriber_key"])) == ["NTO-EU1"]
