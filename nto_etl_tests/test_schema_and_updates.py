"""A data extension follows its contract within MCE's rules; the CRM update file cannot run formulas."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from nto_etl import transfer
from nto_etl.connections import local_settings
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


QUOTED = '=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "+SUM(A1:A9)", "@SUM(A1)"
# Numbers and phone numbers are only computed with, never run: the CRM gets them as they are.
AS_THEY_ARE = "+1 503 555", "+44 (0)20 7946-0000", "-2", "-2.5", "Ann", "", None


@pytest.mark.parametrize(
    ("cell", "sent"),
    [*[(c, "'" + c) for c in (*QUOTED, "\t=1", "\r=1")], *[(c, c) for c in AS_THEY_ARE]],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(cell: str | None, sent: str | None) -> None:
    """The update file's rule for one cell, as the file's SQL applies it."""
    rows = duckdb.sql(f"SELECT {crm_updates.neutralised('$v')}", params={"v": cell}).fetchall()
    assert rows[0][0] == sent


def test_formula_cells_are_neutralised_in_the_crm_update_file(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        prepare(con)
        crm_updates.ensure_mce_rows_table(con)
        con.execute(
            "INSERT INTO crm_contacts (customer_id, subscriber_key, email, first_name, last_name, phone, "
            "created_at, modified_at, _partition) VALUES ('C1', 'K1', 'k1@example.com', 'Ann', 'Lee', "
            "'+1 503-555-0100', '2026-11-01 09:30:00', '2026-11-01 14:05:09', '2026-11-01')"
        )
        con.execute(  # MCE holds the CRM's version of K1 (its Retrieve renders the date so) and changed it
            "INSERT INTO mce_contact_rows VALUES (?, ?, ?, ?, ?, ?)",
            ["K1", "k1@example.com", "=cmd|' /C calc'!A0", "Lee", "+1 503-555-0199", "11/1/2026 2:05:09 PM"],
        )
        written = crm_updates.write_updates(con, str(tmp_path / "inbound" / "updates.csv"))
    assert written.rows == {"contact_change": 2}
    assert written.held_back == 0
    assert not (tmp_path / "inbound" / "updates.csv.part").exists()
    sent = (tmp_path / "inbound" / "updates.csv").read_bytes()
    assert sent.startswith(
        b"subscriber_key,customer_id,update_type,field,old_value,new_value,event_date,engagement_score\r\n"
    )
    assert sent.count(b"\r\n") == 3 and b"\n" not in sent.replace(b"\r\n", b"")
    cells = pd.read_csv(io.BytesIO(sent), dtype=str, keep_default_na=False)
    assert dict(zip(cells.field, cells.new_value, strict=True)) == {
        "first_name": "'=cmd|' /C calc'!A0",  # run by a spreadsheet: quoted
        "phone": "+1 503-555-0199",  # a phone number: as it is
    }


def test_a_difference_where_mce_holds_an_older_version_is_held_back(tmp_path: Path) -> None:
    """The CRM changed K2 after MCE last got it (an import refused the row, or the day's sync has
    not run): MCE's value is the old one, and sending it back would undo the CRM's change."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        prepare(con)
        crm_updates.ensure_mce_rows_table(con)
        for key, modified, partition in [
            ("K1", "2026-11-01 14:05:09", "2026-11-01"),
            ("K2", "2026-11-01 08:00:00", "2026-11-01"),
            ("K2", "2026-11-02 10:00:00", "2026-11-02"),
            ("K3", "2026-11-01 08:00:00", "2026-11-01"),
        ]:
            con.execute(
                "INSERT INTO crm_contacts (customer_id, subscriber_key, email, first_name, last_name, phone, "
                "created_at, modified_at, _partition) VALUES (?, ?, ?, 'Ann', 'Lee', '+1 503-555-0100', "
                "'2026-10-01 09:00:00', ?, ?)",
                [f"C{key[1]}", key, f"{partition}@example.com", modified, partition],
            )
        rows = [
            ("K1", "mce-edit@example.com", "11/1/2026 2:05:09 PM"),  # the CRM's latest version, edited in MCE
            ("K2", "2026-11-01@example.com", "11/1/2026 8:00:00 AM"),  # the CRM's older version
            ("K3", "other@example.com", None),  # no version: cannot tell whose change it is
        ]
        for key, email, modified in rows:
            con.execute(
                "INSERT INTO mce_contact_rows VALUES (?, ?, 'Ann', 'Lee', '+1 503-555-0100', ?)",
                [key, email, modified],
            )
        written = crm_updates.write_updates(con, str(tmp_path / "updates.csv"))
    assert written.rows == {"contact_change": 1}
    assert written.held_back == 2
    with open(tmp_path / "updates.csv", newline="", encoding="utf-8") as handle:
        [change] = list(csv.DictReader(handle))
    assert (change["subscriber_key"], change["field"], change["new_value"]) == (
        "K1",
        "email",
        "mce-edit@example.com",
    )


def test_a_rows_table_made_before_versions_were_kept_gains_the_column(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute(
            "CREATE TABLE mce_contact_rows (subscriber_key VARCHAR, email VARCHAR, first_name VARCHAR, "
            "last_name VARCHAR, phone VARCHAR)"
        )
        con.execute("INSERT INTO mce_contact_rows VALUES ('K1', 'a@example.com', 'Ann', 'Lee', NULL)")
        crm_updates.ensure_mce_rows_table(con)
        columns = [r[0] for r in con.execute("DESCRIBE mce_contact_rows").fetchall()]
        assert columns == crm_updates.MCE_ROW_COLUMNS
        assert con.execute("SELECT modified_at FROM mce_contact_rows").fetchall() == [(None,)]


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


def test_a_hard_bounce_of_an_address_the_crm_has_since_replaced_is_not_sent(tmp_path: Path) -> None:
    """K1 bounced while its email was a@; the CRM has since given it b@: b@ is not invalid."""
    versions = [
        ("K1", "a@example.com", "2026-11-01 08:00:00"),
        ("K1", "b@example.com", "2026-11-02 09:00:00"),  # replaced after the bounce
        ("K2", "c@example.com", "2026-11-01 08:00:00"),  # never replaced
        ("K3", "d@example.com", "2026-11-01 08:00:00"),
        ("K3", "e@example.com", "2026-11-01 10:00:00"),  # replaced before the bounce: e@ bounced
        ("K4", "F@example.com", "2026-11-01 08:00:00"),
        ("K4", "f@example.com", "2026-11-02 09:00:00"),  # the same address, another case
        ("K5", "g@example.com", "2026-11-01 08:00:00"),
        ("K5", None, "2026-11-03 09:00:00"),  # no address now: nothing to flag
    ]
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        prepare(con)
        for key, email, modified in versions:
            con.execute(
                "INSERT INTO crm_contacts (customer_id, subscriber_key, email, created_at, modified_at, _partition) "
                "VALUES (?, ?, ?, '2026-10-01 09:00:00', ?, ?)",
                [f"C{key[1]}", key, email, modified, modified[:10]],
            )
        for key in ("K1", "K2", "K3", "K4", "K5"):
            con.execute(
                "INSERT INTO tracking_events (send_id, subscriber_key, event_type, event_date, _partition) "
                "VALUES (90000, ?, 'HardBounce', '2026-11-01 12:00:00', '2026-11-01')",
                [key],
            )
        written = crm_updates.write_updates(con, str(tmp_path / "updates.csv"))
    assert written.rows == {"hard_bounce": 3}
    assert written.earlier_email_bounces == 2
    with open(tmp_path / "updates.csv", newline="", encoding="utf-8") as handle:
        flagged = [r["subscriber_key"] for r in csv.DictReader(handle) if r["update_type"] == "hard_bounce"]
    assert flagged == ["K2", "K3", "K4"]


def test_mce_rows_are_saved_page_by_page_then_swapped_in_whole(tmp_path: Path) -> None:
    page = pd.DataFrame(
        [["K1", "a@example.com", "Ann", "Lee", None, "11/1/2026 2:05:09 PM"]],
        columns=crm_updates.MCE_ROW_COLUMNS,
    ).astype("string")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert (
            crm_updates.save_mce_rows([page, page.assign(subscriber_key="K2")], tmp_path / "rows.parquet")
            == 2
        )
        assert crm_updates.replace_mce_rows(con, tmp_path / "rows.parquet") == 2
        assert con.execute(
            "SELECT subscriber_key, phone, modified_at FROM mce_contact_rows ORDER BY 1"
        ).fetchall() == [
            ("K1", None, "11/1/2026 2:05:09 PM"),
            ("K2", None, "11/1/2026 2:05:09 PM"),
        ]
        assert crm_updates.save_mce_rows([], tmp_path / "none.parquet") == 0  # an empty DE: an empty table
        assert crm_updates.replace_mce_rows(con, tmp_path / "none.parquet") == 0


def test_the_update_file_reaches_an_sftp_inbound_whole_in_its_order(
    local_mce: LocalMce, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NTO_CRM_INBOUND_URL may be an SFTP location: the file is written locally, then uploaded
    as .part and renamed (transfer.upload_atomic), replacing the day before's."""
    info = local_mce.info
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_bytes(Path(info.sftp_known_hosts).read_bytes())
    monkeypatch.setenv("HOME", str(home))  # the URL's connection checks the host key there
    password = local_mce.credentials.sftp_password
    url = (
        f"sftp://{info.sftp_username}:{password}@{info.sftp_host}:{info.sftp_port}/Import/inbound/updates.csv"
    )
    with duckdb.connect() as con:
        prepare(con)
        con.execute(
            "INSERT INTO tracking_events BY NAME SELECT * FROM (VALUES "
            "(1, 'K2', 'Sent', TIMESTAMP '2026-11-01 10:00', '2026-11-01'), "
            "(1, 'K1', 'Sent', TIMESTAMP '2026-11-01 10:00', '2026-11-01'), "
            "(1, 'K1', 'Unsubscribe', TIMESTAMP '2026-11-01 12:00', '2026-11-01')"
            ") AS t(send_id, subscriber_key, event_type, event_date, _partition)"
        )
        first = crm_updates.write_updates(con, url)
        con.execute("DELETE FROM tracking_events WHERE subscriber_key = 'K2'")
        second = crm_updates.write_updates(con, url)
    assert first.rows == {"engagement_score": 2, "unsubscribe": 1}
    assert second.rows == {"engagement_score": 1, "unsubscribe": 1}
    with transfer.sftp_session(local_settings(info)[1]) as fs:
        sent = fs.cat_file("/Import/inbound/updates.csv")
        assert fs.ls("/Import/inbound", detail=False) == ["/Import/inbound/updates.csv"]  # no .part left
    cells = pd.read_csv(io.BytesIO(sent), dtype=str, keep_default_na=False)
    assert list(zip(cells.update_type, cells.subscriber_key, strict=True)) == [
        ("engagement_score", "K1"),
        ("unsubscribe", "K1"),
    ]
