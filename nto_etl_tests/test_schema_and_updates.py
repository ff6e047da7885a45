"""A data extension follows its contract within MCE's rules; the CRM update file cannot run formulas."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from nto_etl.contracts import Contact
from nto_etl.de_specs import de_spec
from nto_etl.mce import activities as act
from nto_etl.mce import data_extensions as dex
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceError
from nto_etl.mce_local import LocalMce
from nto_etl.schema_sync import SchemaChangeError, ensure_data_extension
from nto_etl.warehouse import crm_updates
from nto_etl.warehouse.analytics import prepare
from nto_etl_tests.helpers import all_rows


def test_the_de_follows_its_contract_within_what_mce_allows(client: MceClient, key: str) -> None:
    spec = de_spec(Contact, key)
    assert ensure_data_extension(client, spec) == "created"
    assert ensure_data_extension(client, spec) == "unchanged"
    grown = replace(spec, fields=(*spec.fields, dex.DEField("loyalty_tier", "Text", 20)))
    assert ensure_data_extension(client, grown) == "fields added or lengthened: loyalty_tier"
    assert dex.describe_data_extension(client, key).fields[-1].name == "loyalty_tier"
    retyped = replace(
        spec,
        fields=tuple(
            replace(f, field_type="Number", max_length=None) if f.name == "postal_code" else f
            for f in spec.fields
        ),
    )
    with pytest.raises(SchemaChangeError, match="postal_code is Text in MCE but Number in the contract"):
        ensure_data_extension(client, retyped)
    shrunk = replace(
        spec, fields=tuple(replace(f, max_length=20) if f.name == "street" else f for f in spec.fields)
    )
    with pytest.raises(SchemaChangeError, match="street would shrink from 200 to 20 characters"):
        ensure_data_extension(client, shrunk)


def test_formula_cells_are_neutralised_in_the_crm_update_file(tmp_path: Path) -> None:
    assert crm_updates.neutralise('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert crm_updates.neutralise("+cmd|' /C calc'!A0") == "'+cmd|' /C calc'!A0"
    assert crm_updates.neutralise("-2+3+cmd|' /C calc'!A0") == "'-2+3+cmd|' /C calc'!A0"
    assert crm_updates.neutralise("+SUM(A1:A9)") == "'+SUM(A1:A9)"
    assert crm_updates.neutralise("@SUM(A1)") == "'@SUM(A1)"
    assert crm_updates.neutralise("\t=1") == "'\t=1"
    # Numbers and phone numbers are only computed with, never run: the CRM gets them as they are.
    assert crm_updates.neutralise("+1 503 555") == "+1 503 555"
    assert crm_updates.neutralise("+44 (0)20 7946-0000") == "+44 (0)20 7946-0000"
    assert crm_updates.neutralise("-2") == "-2"
    assert crm_updates.neutralise("-2.5") == "-2.5"
    assert crm_updates.neutralise("Ann") == "Ann"
    assert crm_updates.neutralise(3) == 3
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        prepare(con)
        crm_updates.ensure_mce_rows_table(con)
        con.execute(
            "INSERT INTO crm_contacts (customer_id, subscriber_key, email, first_name, last_name, phone, "
            "created_at, modified_at, _partition) VALUES ('C1', 'K1', 'k1@example.com', 'Ann', 'Lee', "
            "'+1 503-555-0100', now(), now(), '2026-11-01')"
        )
        con.execute(
            "INSERT INTO mce_contact_rows VALUES (?, ?, ?, ?, ?)",
            ["K1", "k1@example.com", "=cmd|' /C calc'!A0", "Lee", "+1 503-555-0199"],
        )
        counts = crm_updates.write_updates(con, str(tmp_path / "inbound" / "updates.csv"))
    assert counts == {"contact_change": 2}
    with open(tmp_path / "inbound" / "updates.csv", newline="", encoding="utf-8") as handle:
        rows = {r["field"]: r for r in csv.DictReader(handle)}
    assert rows["first_name"]["new_value"].startswith("'=")
    assert rows["phone"]["new_value"] == "+1 503-555-0199"  # what the CRM stores: no quote in front
    assert rows["phone"]["old_value"] == "+1 503-555-0100"
    assert not (tmp_path / "inbound" / "updates.csv.part").exists()


def test_a_query_that_fails_half_way_is_reported_and_a_rerun_repairs_the_segment(
    client: MceClient, local_mce: LocalMce, key: str
) -> None:
    fields = (dex.DEField("Key", "Text", 10, is_primary_key=True), dex.DEField("State", "Text", 2))
    for k in (key, key + "_seg"):
        dex.create_data_extension(client, dex.DataExtensionSpec(k, k, fields))
    dex.upsert_rows(client, key, [{"Key": f"K{i}", "State": "OR"} for i in range(40)])
    spec = act.QuerySpec(
        f"{key}_q", f"SELECT Key, State FROM [{key}] WHERE State = 'OR'", key + "_seg", key + "_seg"
    )
    local_mce.activities.fail_half_way = 1
    with pytest.raises(MceError, match="failed after writing 20 of 40 rows") as info:
        act.run_query(client, spec)
    assert "half-written" in str(info.value)
    assert len(all_rows(client, key + "_seg", ["Key"])) == 20
    assert act.run_query(client, spec).message.startswith("40 rows written")
    assert len(all_rows(client, key + "_seg", ["Key"])) == 40
