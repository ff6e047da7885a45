"""Analytics tables: what they count, checked against pandas, and that they scale past a demo."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource

from nto_etl.definitions import defs
from nto_etl.warehouse import analytics

CONTACTS = [  # customer id, subscriber key, email
    ("C1", "K1", "Ann@Example.com"),
    ("C2", "K2", "bo@example.com"),
    ("C3", "K3", "shared@example.com"),
    ("C4", "K4", "shared@example.com"),  # two contacts, one address
    ("C5", "K5", None),
]


def sha(email: str) -> str:
    return hashlib.sha256(email.lower().encode()).hexdigest()


VIEWS = [  # view id, session, customer id, email hash, utm_medium
    ("V1", "S1", "C1", None, "email"),  # by id
    ("V2", "S1", "C1", sha("ann@example.com"), None),  # by id and by email, the same contact: once
    ("V3", "S2", None, sha("ANN@example.com"), "email"),  # by email, any case
    ("V4", "S3", "C2", sha("ann@example.com"), None),  # id of one, email of another: both
    ("V5", "S4", None, sha("shared@example.com"), None),  # one address, two contacts: both
    ("V6", "S5", "C9", None, None),  # nobody's
    ("V7", "S5", None, None, None),  # anonymous
    ("V8", "S6", "C5", None, "email"),  # a contact without an email, by id
]


def warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    analytics.prepare(con)
    contacts = pd.DataFrame(CONTACTS, columns=["customer_id", "subscriber_key", "email"])
    contacts["modified_at"], contacts["_partition"] = pd.Timestamp("2026-11-01"), "2026-11-01"
    views = pd.DataFrame(
        VIEWS, columns=["page_view_id", "session_id", "customer_id", "email_sha256", "utm_medium"]
    )
    views["viewed_at"] = [pd.Timestamp("2026-11-01") + pd.Timedelta(hours=i) for i in range(len(views))]
    views["page_url"], views["_partition"] = "https://nto.example/", "2026-11-01"
    con.execute("INSERT INTO crm_contacts BY NAME SELECT * FROM contacts")
    con.execute("INSERT INTO web_page_views BY NAME SELECT * FROM views")
    return con


def expected_web_activity() -> pd.DataFrame:
    """Each contact's views, found the plain way: every (contact, view) pair tested in Python."""
    rows = []
    for customer_id, key, email in CONTACTS:
        mine = [v for v in VIEWS if v[2] == customer_id or (email is not None and v[3] == sha(email))]
        rows.append(
            {
                "subscriber_key": key,
                "page_views": len(mine),
                "web_sessions": len({v[1] for v in mine}),
                "web_views_from_email": sum(v[4] == "email" for v in mine),
            }
        )
    return pd.DataFrame(rows)


def test_customer_360_counts_each_contacts_views_by_id_or_email_hash() -> None:
    con = warehouse()
    assert analytics.build(con, "customer_360") == len(CONTACTS)
    got = con.execute(
        "SELECT subscriber_key, page_views, web_sessions, web_views_from_email FROM customer_360 "
        "ORDER BY subscriber_key"
    ).df()
    expected = expected_web_activity()
    assert expected.page_views.tolist() == [4, 1, 1, 1, 1]  # the cases above, as meant
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_customer_360_joins_views_without_a_nested_loop() -> None:
    """A join ON id OR email hash is a nested loop: every view against every contact, which at a
    million contacts and a day's views does not finish. The plan must hold only hash joins."""
    con = warehouse()
    analytics.build(con, "customer_360")
    statement = analytics.CUSTOMER_360.replace("CREATE OR REPLACE TABLE customer_360 AS", "")
    plan = "\n".join(row[1] for row in con.execute(f"EXPLAIN {statement}").fetchall())
    operators = {name.strip().lower().replace("_", " ") for name in re.findall(r"─ ([A-Za-z_ ]+) ─", plan)}
    assert "hash join" in operators
    loops = {"nested loop join", "blockwise nl join", "cross product", "piecewise merge join"}
    assert not operators & loops, operators


def test_the_analytics_tables_check_their_rules(tmp_path: Path) -> None:
    """Through Dagster: a send whose opens are merged but whose Sent events and send job are not
    (its send day's tracking partition not merged yet) is flagged, as a warning, twice; the
    tables' one-row-per-key rules hold."""
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        analytics.prepare(con)
        con.execute(
            "INSERT INTO tracking_events BY NAME SELECT * FROM (VALUES "
            "(1, 'K1', 'Sent', TIMESTAMP '2026-11-01 10:00', '2026-11-01'), "
            "(1, 'K1', 'Open', TIMESTAMP '2026-11-01 11:00', '2026-11-01'), "
            "(2, 'K1', 'Open', TIMESTAMP '2026-11-02 11:00', '2026-11-02')"  # send 2's Sent not merged
            ") AS t(send_id, subscriber_key, event_type, event_date, _partition)"
        )
        con.execute(
            "INSERT INTO send_jobs (send_id, email_name, _partition) VALUES (1, 'Welcome', '2026-11-01')"
        )
    definitions = defs()
    keys = [dg.AssetKey(["warehouse", t]) for t in ("email_engagement", "campaign_performance")]
    result = dg.materialize(
        [
            a
            for a in definitions.assets or []
            if isinstance(a, dg.AssetsDefinition) and set(a.keys) & set(keys)
        ],
        resources={"warehouse": DuckDBResource(database=str(database))},
    )
    assert result.success  # a warning does not fail the run
    checks = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    assert checks["one_row_per_subscriber"].passed
    shares = checks["rates_are_shares"]
    assert not shares.passed and shares.severity == dg.AssetCheckSeverity.WARN
    assert shares.metadata["rows_breaking_it"].value == 1
    assert shares.metadata["first_of_them"].value == [
        {"send_id": 2, "sent": 0, "delivered": 0, "unique_opens": 1, "unique_clicks": 0, "unsubscribes": 0}
    ]
    named = checks["sends_are_named"]  # send 2's send jobs not merged either
    assert not named.passed and named.severity == dg.AssetCheckSeverity.WARN
    assert named.metadata["first_of_them"].value == [{"send_id": 2, "sent_at": None, "sent": 0}]


def test_a_contact_twice_or_missing_in_customer_360_breaks_its_rule() -> None:
    con = warehouse()
    analytics.build(con, "customer_360")
    [rule] = analytics.CHECKS["customer_360"]
    assert analytics.violations(con, rule) == (0, [])
    con.execute("INSERT INTO customer_360 SELECT * FROM customer_360 WHERE subscriber_key = 'K2'")
    con.execute("DELETE FROM customer_360 WHERE subscriber_key = 'K3'")
    count, rows = analytics.violations(con, rule)
    assert count == 2
    assert sorted((r["subscriber_key"], r["copies"]) for r in rows) == [("K2", 2), ("K3", 0)]
