"""`make demo`: the whole asset graph against a local MCE, over the sample days, then a summary.

Starts the local MCE (state in .state/demo/mce), points the pipeline at it and at the
sample CRM drop, materializes every daily partition in order and then the analytics,
prints what happened, and stops the local MCE. A second run imports nothing new.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import duckdb

from nto_etl.drops import list_dated_files
from nto_etl.mce_local import LocalMce


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
        partitioned = dg.AssetSelection.assets(
            *[
                k
                for k in graph.get_all_asset_keys()
                if graph.get(k).is_partitioned and graph.get(k).is_materializable
            ]
        )
        rest = dg.AssetSelection.all() - partitioned
        print(f"local MCE at {mce.info.soap_url}; CRM drop {drop}; days {', '.join(partitions)}")
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        for partition in partitions:
            result = dg.materialize(
                assets,
                selection=partitioned,
                partition_key=partition,
                resources=defs.resources,
                raise_on_error=False,
                run_config=quiet,
            )
            print(f"{partition}: {'ok' if result.success else 'FAILED'}")
            if not result.success:
                return 1
        result = dg.materialize(
            assets, selection=rest, resources=defs.resources, raise_on_error=False, run_config=quiet
        )
        print(f"analytics and CRM updates: {'ok' if result.success else 'FAILED'}")
        print_summary(state_dir / "pipeline")
        return 0 if result.success else 1


def print_summary(work: Path) -> None:
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    print("\nimports into MCE (ledger):")
    for de, imports, rows, errors in con.execute(
        "SELECT de_key, count(*), sum(successful), sum(errors) FROM import_ledger GROUP BY de_key ORDER BY de_key"
    ).fetchall():
        print(f"  {de}: {imports} imports, {rows} rows imported, {errors} rows refused")
    tables = ["crm_contacts", "web_page_views", "customer_360", "email_engagement", "campaign_performance"]
    print("warehouse tables:")
    for table in tables:
        row = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        print(f"  {table}: {row[0] if row else 0} rows")
    inbound = work / "crm_inbound" / "nto_mce_updates.csv"
    print(f"CRM update file: {inbound}" if inbound.exists() else "CRM update file: not written")
    print(f"DuckDB warehouse: {work / 'warehouse.duckdb'}")
    con.close()
