"""Data contracts: one model per dataset, and the same rules as MCE's, checked against the local MCE."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pandera.pandas as pa
import pytest

from nto_etl.contracts import (
    MODELS,
    Contact,
    EventRegistration,
    NewCustomer,
    dataset_info,
    de_fields,
    duckdb_columns,
)
from nto_etl.de_specs import de_spec
from nto_etl.mce import data_extensions as dex
from nto_etl.mce.client import MceClient


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_every_contract_is_strict_coercing_and_documented(model: type[pa.DataFrameModel]) -> None:
    schema = model.to_schema()
    assert schema.strict is True
    assert schema.coerce is True
    for name, column in schema.columns.items():
        assert column.description, f"{model.__name__}.{name} has no description"
        assert "mce" in (column.metadata or {}), f"{model.__name__}.{name} has no MCE field definition"
    assert [f.name for f in de_fields(model)] == list(schema.columns)
    assert list(duckdb_columns(model)) == list(schema.columns)


def test_contact_fields_as_mce_sees_them() -> None:
    fields = {f.name: f for f in de_fields(Contact)}
    assert fields["subscriber_key"].is_primary_key and fields["subscriber_key"].is_required
    assert (fields["email"].field_type, fields["email"].max_length, fields["email"].is_required) == (
        "EmailAddress",
        254,
        True,
    )
    assert fields["phone"].field_type == "Phone"
    assert fields["locale"].field_type == "Locale"
    assert fields["postal_code"].field_type == "Text"  # text: leading zeros survive
    assert fields["modified_at"].field_type == "Date"
    assert dataset_info(Contact).modified_column == "modified_at"
    money = {f.name: f for f in de_fields(NewCustomer)}["first_order_total"]
    assert (money.field_type, money.precision, money.scale) == ("Decimal", 10, 2)
    assert duckdb_columns(NewCustomer)["first_order_total"] == "DECIMAL(10,2)"
    assert duckdb_columns(EventRegistration)["seats"] == "INTEGER"


BASE_CUSTOMER = {
    "subscriber_key": "K1",
    "email": "k1@example.com",
    "first_name": "Kim",
    "locale": "en-US",
    "home_store": "Portland Pearl",
    "first_order_total": "12.50",
    "created_at": "2026-11-01 10:00:00",
    "modified_at": "2026-11-01 10:00:00",
}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("email", "kim at example.com"),
        ("email", "kim@example"),
        ("email", "kim..lee@example.com"),
        ("locale", "english"),
        ("first_name", "K" * 51),
        ("first_order_total", "123456789.00"),
        ("subscriber_key", None),
    ],
)
def test_a_row_mce_refuses_is_refused_by_the_contract_first(
    client: MceClient, key: str, column: str, value: str | None
) -> None:
    row = {**BASE_CUSTOMER, column: value}
    with pytest.raises(pa.errors.SchemaErrors) as info:
        NewCustomer.validate(pd.DataFrame([row]), lazy=True)
    assert column in set(info.value.failure_cases["column"])
    dex.create_data_extension(client, de_spec(NewCustomer, key))
    mce_row = {k: v for k, v in row.items() if v is not None}
    result = dex.upsert_rows(client, key, [mce_row])
    assert result.saved == 0
    assert column in {e.name for e in result.field_errors} or (value is None and result.failed)


def test_a_row_the_contract_accepts_is_accepted_by_mce(client: MceClient, key: str) -> None:
    valid = NewCustomer.validate(pd.DataFrame([BASE_CUSTOMER]))
    dex.create_data_extension(client, de_spec(NewCustomer, key))
    record = valid.iloc[0].to_dict()
    record["created_at"] = record["created_at"].to_pydatetime()
    record["modified_at"] = record["modified_at"].to_pydatetime()
    result = dex.upsert_rows(client, key, [record])
    assert (result.saved, result.failed) == (1, [])
    [page] = dex.retrieve_rows(client, key, ["subscriber_key", "first_order_total", "created_at"])
    assert page.iloc[0].to_dict() == {
        "subscriber_key": "K1",
        "first_order_total": "12.50",
        "created_at": "11/1/2026 10:00:00 AM",
    }
    assert isinstance(record["created_at"], datetime)
