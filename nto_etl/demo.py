"""`make demo`: the whole asset graph against a local MCE, over the sample days, then a summary.

Starts the local MCE (state in .state/demo/mce), points the pipeline at it and at the
sample CRM drop, materializes every daily partition in order and then the analytics,
prints what happened, and stops the local MCE. A second run imports nothing new.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb

from nto_etl import segments
from nto_etl.connections import local_settings
from nto_etl.defs.segments import AUDIENCE, REGION
from nto_etl.defs.tracking import EXTRACT
from nto_etl.drops import list_dated_files
from nto_etl.mce.client import MceClient
from nto_etl.mce_local import LocalMce

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
        defs = _pipeline_definitions()
        partitions = sorted({f.date for f in list_dated_files(str(drop / "contacts"))})
        assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
        graph = defs.resolve_asset_graph()
        tracking = dg.AssetSelection.assets(EXTRACT, dg.AssetKey(["warehouse", "tracking_events"]))
        partitioned = dg.AssetSelection.assets(
            *[
                k
                for k in graph.get_all_asset_keys()
                if graph.get(k).is_partitioned and graph.get(k).is_materializable
            ]
        )
        audience = dg.AssetSelection.assets(AUDIENCE, dg.AssetKey(["mce", "segment_region"]))
        steps: list[tuple[str, dg.AssetSelection, str | None]] = [
            (f"{p}: CRM exports and web analytics", partitioned - tracking, p) for p in partitions
        ]
        steps.append(("newsletter audience and region segments", audience, None))
        steps += [(f"{p}: tracking", tracking, p) for p in partitions]
        steps.append(
            (
                "behaviour segment, analytics and CRM updates",
                dg.AssetSelection.all() - partitioned - audience,
                None,
            )
        )
        print(f"local MCE at {mce.info.soap_url}; CRM drop {drop}; days {', '.join(partitions)}")
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        for label, selection, partition in steps:
            if label.endswith("tracking") and partition == partitions[0]:
                newsletter(mce, partitions[0])
            result = dg.materialize(
                assets,
                selection=selection,
                partition_key=partition,
                resources=defs.resources,
                raise_on_error=False,
                run_config=quiet,
            )
            print(f"{label}: {'ok' if result.success else 'FAILED'}")
            if not result.success:
                return 1
        print_summary(state_dir / "pipeline", mce)
        return 0


def newsletter(mce: LocalMce, first_day: str) -> None:
    """The monthly newsletter, sent once to the audience segment on the first sample day (10:00 MCE time)."""
    if mce.sends_named(NEWSLETTER):
        print(f"{NEWSLETTER}: already sent")
        return
    sent_at = datetime.fromisoformat(first_day) + timedelta(hours=10)
    send_id, recipients = mce.send(
        segments.NEWSLETTER_AUDIENCE.de_key,
        sent_at=sent_at,
        seed=2026,
        subject="November trails",
        name=NEWSLETTER,
    )
    print(f"{NEWSLETTER}: simulated send {send_id} to {recipients} subscribers at {sent_at} (MCE time)")


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
        row = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        print(f"  {table}: {row[0] if row else 0} rows")
    print("segments in MCE:")
    client = MceClient(local_settings(mce.info)[0])
    for de in (
        segments.NEWSLETTER_AUDIENCE.de_key,
        segments.region_segment(REGION).de_key,
        segments.NOT_OPENED.de_key,
    ):
        print(f"  {de}: {segments.segment_size(client, de)} subscribers")
    print("campaign performance:")
    for send_id, sent, open_rate, click_rate, bounce_rate, unsub_rate in con.execute(
        "SELECT send_id, sent, open_rate, click_rate, bounce_rate, unsubscribe_rate FROM campaign_performance"
    ).fetchall():
        print(
            f"  send {send_id}: {sent} sent, open {open_rate}%, click {click_rate}%, bounce {bounce_rate}%, "
            f"unsubscribe {unsub_rate}%"
        )
    inbound = work / "crm_inbound" / "nto_mce_updates.csv"
    print(f"CRM update file: {inbound}" if inbound.exists() else "CRM update file: not written")
    print(f"DuckDB warehouse: {work / 'warehouse.duckdb'}")
    con.close()
