"""`make demo`: the whole asset graph against a local MCE, over the sample days, then a summary.

Starts the local MCE (state in .state/demo/mce), points the pipeline at it and at the
sample CRM drop, materializes every daily partition in order and then the analytics,
prints what happened, and stops the local MCE. A second run imports nothing new.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from nto_etl import runner, segments
from nto_etl.connections import local_settings
from nto_etl.defs.segments import AUDIENCE, REGION
from nto_etl.defs.tracking import EXTRACT
from nto_etl.drops import list_dated_files
from nto_etl.mce.client import MceClient
from nto_etl.mce_local import LocalMce
from nto_etl.mce_local.clock import reading
from nto_etl.sql import ident, scalar

NEWSLETTER = "NTO November newsletter"


def _pipeline_definitions() -> dg.Definitions:
    from nto_etl.definitions import defs

    return defs()


def run_demo(state_dir: Path, data_dir: Path) -> int:
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    drop = (data_dir / "sample" / "crm").resolve()
    with LocalMce(state_dir / "mce") as mce:
        info_path = state_dir / "mce-local.json"
        info_path.write_text(mce.info.to_json())
        info_path.chmod(0o600)
        os.environ.update(
            {
                "NTO_MCE_LOCAL_INFO": str(info_path),
                "NTO_WORK_DIR": str(state_dir / "pipeline"),
                "NTO_CRM_DROP_URL": str(drop),
                "NTO_WEB_ANALYTICS_URL": str(
                    (data_dir / "sample" / "web_analytics" / "page_views").resolve()
                ),
            }
        )
        definitions = _pipeline_definitions()
        partitions = sorted({f.date for f in list_dated_files(str(drop / "contacts"))})
        tracking = dg.AssetSelection.assets(EXTRACT, dg.AssetKey(["warehouse", "tracking_events"]))
        partitioned = runner.partitioned_selection(definitions)
        audience = dg.AssetSelection.assets(AUDIENCE, dg.AssetKey(["mce", "segment_region"]))
        print(f"local MCE at {mce.info.soap_url}; CRM drop {drop}; days {', '.join(partitions)}")
        imports_before = _imports(state_dir / "pipeline")
        ok = (
            runner.materialize(
                definitions, partitioned - tracking, partitions, label="CRM exports and web analytics"
            )
            and runner.materialize(
                definitions, audience, [None], label="newsletter audience and region segments"
            )
            and newsletter(mce, partitions[0])
            and runner.materialize(definitions, tracking, partitions, label="tracking")
            and refreshed_as_on(
                monthly_refresh_after(partitions[0]),
                lambda: runner.materialize(
                    definitions,
                    dg.AssetSelection.all() - partitioned - audience,
                    [None],
                    label="behaviour segment, analytics and CRM updates",
                ),
            )
        )
        if not ok:
            return 1
        new_imports = _imports(state_dir / "pipeline") - imports_before
        print(
            f"\nthis run started {new_imports} imports"
            + ("" if new_imports else ": everything was already in MCE")
        )
        print_summary(state_dir / "pipeline", mce)
        return 0


def monthly_refresh_after(day: str) -> datetime:
    """The next monthly newsletter refresh after `day`, in MCE time: the 1st, 06:00 Pacific
    (08:00 CST, as in winter)."""
    first: datetime = (pd.Timestamp(day) + pd.offsets.MonthBegin(1)).to_pydatetime()
    return first.replace(hour=8)


def refreshed_as_on(at: datetime, run: Callable[[], bool]) -> bool:
    """Run with the local MCE's clock at `at`: the behaviour segment's window is counted back
    from MCE's clock, so the sample's send stays in it whatever day the demo runs."""
    print(f"(the local MCE's clock reads {at:%Y-%m-%d %H:%M} for the behaviour segment: the monthly refresh)")
    with reading(at):
        return run()


def _imports(work: Path) -> int:
    database = work / "warehouse.duckdb"
    if not database.exists():
        return 0
    with duckdb.connect(str(database), read_only=True) as con:
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "import_ledger" not in tables:
            return 0
        return int(con.execute("SELECT count(*) FROM import_ledger").fetchall()[0][0])


def newsletter(mce: LocalMce, first_day: str) -> bool:
    """The monthly newsletter, sent once to the audience segment on the first sample day (10:00 MCE time)."""
    if mce.sends_named(NEWSLETTER):
        print(f"{NEWSLETTER}: already sent")
        return True
    sent_at = datetime.fromisoformat(first_day) + timedelta(hours=10)
    send_id, recipients = mce.send(
        segments.NEWSLETTER_AUDIENCE.de_key,
        sent_at=sent_at,
        seed=2026,
        subject="November trails",
        name=NEWSLETTER,
    )
    print(f"{NEWSLETTER}: simulated send {send_id} to {recipients} subscribers at {sent_at} (MCE time)")
    return True


def print_summary(work: Path, mce: LocalMce) -> None:
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    print("\nimports into MCE (ledger):")
    for de, imports, rows, errors in con.execute(
        "SELECT de_key, count(*), sum(successful), sum(errors) FROM import_ledger GROUP BY de_key ORDER BY de_key"
    ).fetchall():
        print(f"  {de}: {imports} imports, {rows} rows imported, {errors} rows refused")
    tables = ["crm_contacts", "web_page_views", "tracking_events", "email_engagement", "customer_360"]
    print("warehouse tables:")
    for table in tables:
        print(f"  {table}: {scalar(con, f'SELECT count(*) FROM {ident(table)}')} rows")
    print("segments in MCE:")
    client = MceClient(local_settings(mce.info)[0])
    for de in (
        segments.NEWSLETTER_AUDIENCE.de_key,
        segments.region_segment(REGION).de_key,
        segments.NOT_OPENED.de_key,
    ):
        print(f"  {de}: {segments.segment_size(client, de)} subscribers")
    print("campaign performance:")
    for send_id, email, sent, open_rate, click_rate, bounce_rate, unsub_rate in con.execute(
        "SELECT send_id, email_name, sent, open_rate, click_rate, bounce_rate, unsubscribe_rate "
        "FROM campaign_performance"
    ).fetchall():
        print(
            f"  send {send_id} ({email or 'email not named yet'}): {sent} sent, open {open_rate}%, "
            f"click {click_rate}%, bounce {bounce_rate}%, unsubscribe {unsub_rate}%"
        )
    inbound = work / "crm_inbound" / "nto_mce_updates.csv"
    print(f"CRM update file: {inbound}" if inbound.exists() else "CRM update file: not written")
    print(f"DuckDB warehouse: {work / 'warehouse.duckdb'}")
    con.close()
