"""Data extensions through the real client: definitions, typed rows, upserts, paged retrieval, filters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sshfs import SSHFileSystem

from nto_etl.mce import data_extensions as dex
from nto_etl.mce import imports
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceError, MceNotFoundError, MceValidationError
from nto_etl_tests.helpers import CONTACT_FIELDS, all_rows, csv_text, make_de, put_import_file

COLUMNS = [f.name for f in CONTACT_FIELDS]


def test_create_then_describe_round_trips_the_fields(client: MceClient, key: str) -> None:
    spec = dex.DataExtensionSpec(
        key, f"{key} name", CONTACT_FIELDS, description="contacts", sendable_field="SubscriberKey"
    )
    object_id = dex.create_data_extension(client, spec)
    described = dex.describe_data_extension(client, key)
    assert described.object_id == object_id
    assert described.name == f"{key} name"
    assert [f.name for f in described.fields] == COLUMNS
    assert described.field("Balance").precision == 7 and described.field("Balance").scale == 2
    assert described.field("FirstName").max_length == 10
    assert described.field("Email").max_length == 254  # MCE's default for EmailAddress
    assert described.primary_key == ["SubscriberKey"]
    assert described.field("SubscriberKey").is_required


def test_describe_unknown_data_extension(client: MceClient) -> None:
    with pytest.raises(MceNotFoundError, match="does not exist"):
        dex.describe_data_extension(client, "no_such_de")


def test_duplicate_and_invalid_definitions_are_refused(client: MceClient, key: str) -> None:
    make_de(client, key)
    with pytest.raises(MceError, match="already exists"):
        make_de(client, key)
    with pytest.raises(MceValidationError, match="needs Precision and Scale"):
        make_de(client, key + "d", [dex.DEField("Amount", "Decimal")])
    with pytest.raises(MceValidationError, match="MaxLength must be between 1 and 4000"):
        make_de(client, key + "t", [dex.DEField("Note", "Text", 5000)])


def test_fields_can_be_added_but_not_retyped_or_shrunk(client: MceClient, key: str) -> None:
    make_de(client, key)
    dex.add_fields(client, key, [dex.DEField("Region", "Text", 30)])
    assert dex.describe_data_extension(client, key).fields[-1].name == "Region"
    with pytest.raises(MceValidationError, match="FieldType cannot change from Text to Number"):
        dex.add_fields(client, key, [dex.DEField("FirstName", "Number")])
    with pytest.raises(MceValidationError, match="MaxLength cannot shrink from 10 to 5"):
        dex.add_fields(client, key, [dex.DEField("FirstName", "Text", 5)])


def test_upsert_inserts_then_updates_only_given_fields(client: MceClient, key: str) -> None:
    make_de(client, key)
    rows = [
        {"SubscriberKey": f"S{i:03d}", "Email": f"s{i}@example.com", "Visits": i, "OptIn": i % 2 == 0}
        for i in range(120)
    ]  # three SOAP batches of at most 50
    assert dex.upsert_rows(client, key, rows).saved == 120
    result = dex.upsert_rows(client, key, [{"SubscriberKey": "S007", "FirstName": "Ann"}])
    assert result.saved == 1 and not result.failed
    stored = all_rows(client, key, COLUMNS)
    assert len(stored) == 120
    assert stored["S007"]["FirstName"] == "Ann"
    assert stored["S007"]["Email"] == "s7@example.com"  # kept: not part of the update
    assert stored["S007"]["Visits"] == "7"
    assert stored["S008"]["OptIn"] == "True" and stored["S007"]["OptIn"] == "False"


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"Email": "not-an-email"}, "Email", "not a valid email address"),
        ({"Email": "a b@example.com"}, "Email", "not a valid email address"),
        ({"FirstName": "Bartholomew-the-long"}, "FirstName", "exceeds the maximum length of 10"),
        ({"Visits": "2147483648"}, "Visits", "not a whole number"),
        ({"Visits": "3.5"}, "Visits", "not a whole number"),
        ({"Balance": "123456.00"}, "Balance", "at most 5 integer digits"),
        ({"SignupDate": "31/31/2024"}, "SignupDate", "not a valid date"),
        ({"OptIn": "maybe"}, "OptIn", "not a valid boolean"),
        ({"Email": None}, "Email", "is required"),
    ],
)
def test_type_violations_are_rejected_per_row(
    client: MceClient, key: str, row: dict, field: str, message: str
) -> None:
    make_de(client, key)
    good = {"SubscriberKey": "GOOD", "Email": "good@example.com"}
    bad = {"SubscriberKey": "BAD", "Email": "bad@example.com", **row}
    result = dex.upsert_rows(client, key, [good, bad])
    assert result.saved == 1
    assert [(e.ordinal, e.name, e.code) for e in result.field_errors] == [
        (1, field, 70004 if "required" in message else (70002 if "length" in message else 310007))
    ]
    assert message in result.field_errors[0].message
    assert list(all_rows(client, key, ["SubscriberKey"])) == ["GOOD"]


def test_accepted_values_are_stored_typed(client: MceClient, key: str) -> None:
    make_de(client, key)
    dex.upsert_rows(
        client,
        key,
        [
            {
                "SubscriberKey": "T1",
                "Email": "t1@example.com",
                "Visits": "-42",
                "Balance": "12345.678",
                "SignupDate": datetime(2026, 3, 4, 15, 6, 7),
                "OptIn": "Y",
            }
        ],
    )
    row = all_rows(client, key, COLUMNS)["T1"]
    assert row["Visits"] == "-42"
    assert row["Balance"] == "12345.68"  # rounded to the field's scale
    assert row["SignupDate"] == "3/4/2026 3:06:07 PM"
    assert row["OptIn"] == "True"


def test_delete_rows_by_primary_key(client: MceClient, key: str) -> None:
    make_de(client, key)
    dex.upsert_rows(client, key, [{"SubscriberKey": k, "Email": f"{k}@example.com"} for k in ("A", "B", "C")])
    result = dex.delete_rows(client, key, [{"SubscriberKey": "B"}, {"SubscriberKey": "Z"}])
    assert result.saved == 1
    assert [r.error_code for r in result.failed] == [310002]
    assert sorted(all_rows(client, key, ["SubscriberKey"])) == ["A", "C"]


def test_retrieve_pages_over_more_than_two_pages(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, key: str
) -> None:
    make_de(client, key)
    n = 5 * 1000 + 123
    text = csv_text(
        ["SubscriberKey", "Email", "Visits"], [[f"P{i:05d}", f"p{i}@example.com", i] for i in range(n)]
    )
    put_import_file(sftp, tmp_path, f"{key}.csv", text)
    result = imports.run_import(client, imports.ImportSpec(f"{key}_imp", key, f"{key}.csv"), timeout=120)
    assert result.successful == n
    pages = list(dex.retrieve_rows(client, key, ["SubscriberKey", "Visits"]))
    assert [len(p) for p in pages] == [2500, 2500, 123]
    keys = [k for p in pages for k in p["SubscriberKey"]]
    assert len(set(keys)) == n
    assert sum(int(v) for p in pages for v in p["Visits"]) == sum(range(n))


def test_retrieve_with_filters(client: MceClient, key: str) -> None:
    make_de(client, key)
    dex.upsert_rows(
        client,
        key,
        [
            {
                "SubscriberKey": f"F{i}",
                "Email": f"f{i}@example.com",
                "Visits": i,
                "SignupDate": datetime(2026, 1, 1 + i),
                "OptIn": i % 2 == 0,
            }
            for i in range(10)
        ],
    )

    def keys(flt: object) -> list[str]:
        return sorted(
            k for p in dex.retrieve_rows(client, key, ["SubscriberKey"], flt) for k in p["SubscriberKey"]
        )

    f = client.simple_filter
    assert keys(f("Visits", "greaterThan", 7)) == ["F8", "F9"]
    assert keys(f("SignupDate", "between", datetime(2026, 1, 3), datetime(2026, 1, 5))) == ["F2", "F3", "F4"]
    assert keys(f("SubscriberKey", "IN", "F1", "F5", "nope")) == ["F1", "F5"]
    assert keys(client.all_of(f("OptIn", "equals", "true"), f("Visits", "lessThan", 5))) == ["F0", "F2", "F4"]
    assert keys(client.any_of(f("Visits", "equals", 0), f("Visits", "equals", 9))) == ["F0", "F9"]
    with pytest.raises(MceValidationError, match="like operator is not supported"):
        keys(f("Email", "like", "%f1%"))
    with pytest.raises(MceValidationError, match="do not match with the fields"):
        list(dex.retrieve_rows(client, key, ["NoSuchColumn"]))


def test_phone_locale_and_default_values(client: MceClient, key: str) -> None:
    make_de(
        client,
        key,
        [
            dex.DEField("Id", "Text", 10, is_primary_key=True),
            dex.DEField("Phone", "Phone"),
            dex.DEField("Locale", "Locale"),
            dex.DEField("Tier", "Text", 10, is_required=True, default_value="bronze"),
            dex.DEField("Joined", "Date", default_value="Now()"),
        ],
    )
    result = dex.upsert_rows(
        client,
        key,
        [
            {"Id": "1", "Phone": "+1 (503) 555-0100", "Locale": "en-US"},
            {"Id": "2", "Phone": "call me", "Locale": "en-US"},
            {"Id": "3", "Phone": "5035550101", "Locale": "english"},
        ],
    )
    assert [(e.ordinal, e.name) for e in result.field_errors] == [(1, "Phone"), (2, "Locale")]
    row = all_rows(client, key, ["Id", "Tier", "Joined"])["1"]
    assert row["Tier"] == "bronze"
    assert row["Joined"] is not None and row["Joined"].endswith(("AM", "PM"))


def test_state_survives_a_restart(tmp_path: Path) -> None:
    from nto_etl.connections import local_settings
    from nto_etl.mce_local import LocalMce

    with LocalMce(tmp_path) as mce:
        first = MceClient(local_settings(mce.info)[0])
        make_de(first, "Kept")
        dex.upsert_rows(first, "Kept", [{"SubscriberKey": "K", "Email": "k@example.com"}])
        credentials = mce.info.client_secret
    with LocalMce(tmp_path) as mce:
        assert mce.info.client_secret == credentials
        again = MceClient(local_settings(mce.info)[0])
        assert dex.describe_data_extension(again, "Kept").primary_key == ["SubscriberKey"]
        assert list(all_rows(again, "Kept", ["SubscriberKey", "Email"]).values()) == [
            {"SubscriberKey": "K", "Email": "k@example.com"}
        ]


def test_fast_and_zeep_retrieval_give_the_same_frames(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, key: str
) -> None:
    make_de(client, key)
    text = csv_text(
        ["SubscriberKey", "Email", "FirstName", "Visits"],
        [[f"Z{i:05d}", f"z{i}@example.com", "Zoë" if i % 3 else "", i] for i in range(2600)],
    )
    put_import_file(sftp, tmp_path, f"{key}.csv", text)
    imports.run_import(client, imports.ImportSpec(f"{key}_imp", key, f"{key}.csv"), timeout=120)
    columns = ["SubscriberKey", "Email", "FirstName", "Visits"]
    fast = list(dex.retrieve_rows(client, key, columns))
    slow = list(dex.retrieve_rows_zeep(client, key, columns))
    assert [len(p) for p in fast] == [len(p) for p in slow] == [2500, 100]
    for a, b in zip(fast, slow, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert fast[0]["FirstName"].isna().sum() > 0  # absent properties are missing, not empty strings
