"""DuckDB warehouse assets: partition loads, DE rows read back from MCE, analytics tables, the CRM update file."""

import json
import tempfile
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from nto_etl.config import default_config
from nto_etl.defs.crm_sync import de_key, staged_file, staged_key
from nto_etl.defs.partitions import daily, network_retry
from nto_etl.defs.resources import MceResource, PipelineStorage, warehouse_connection
from nto_etl.mce import data_extensions as dex
from nto_etl.secrets import shown_url
from nto_etl.warehouse import analytics, crm_updates
from nto_etl.warehouse.loads import load_staged_partition

EAGER = dg.AutomationCondition.eager()
TRACKING = dg.AssetKey(["warehouse", "tracking_events"])
CONTACTS = dg.AssetKey(["warehouse", "crm_contacts"])
WEB = dg.AssetKey(["warehouse", "web_page_views"])
DAILY_INPUTS = dg.AssetSelection.assets(TRACKING, CONTACTS, WEB, de_key("contacts"))
# The tables without partitions follow their inputs as eager does, except that a missing day of a
# daily input holds nothing back: today's partition is open (the event reminders run during the
# day) and is missing until the next night's sync, so plain eager, which waits for every
# partition of every input, would never update them. A missing table among the inputs still does.
FOLLOWS_INPUTS = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    & ~dg.AutomationCondition.any_deps_missing().ignore(DAILY_INPUTS)
).with_label("eager; missing days of daily inputs allowed")


def _preview(con: object, table: str, limit: int = 5) -> dg.MetadataValue:
    frame = con.execute(f'SELECT * FROM "{table}" LIMIT {limit}').df()  # type: ignore[attr-defined]
    return dg.MetadataValue.md(frame.to_markdown(index=False) if not frame.empty else "(empty)")


def load_asset(dataset: str, table: str) -> dg.AssetsDefinition:
    from nto_etl.contracts import MODELS

    model = MODELS[dataset]

    @dg.asset(
        key=["warehouse", table],
        deps=[staged_key(dataset)],
        partitions_def=daily,
        group_name="warehouse",
        kinds={"duckdb"},
        pool="duckdb",
        automation_condition=EAGER,
        description=f"The day's validated {dataset} in DuckDB ({table}); a re-run replaces the day's rows.",
    )
    def _load(
        context: dg.AssetExecutionContext, storage: PipelineStorage, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        staged = staged_file(storage, dataset, context.partition_key)
        with warehouse_connection(warehouse) as con:
            rows = load_staged_partition(con, table, model, staged, context.partition_key)
            preview = _preview(con, table)
        return dg.MaterializeResult(metadata={"dagster/row_count": rows, "table": table, "preview": preview})

    return _load


@dg.asset(
    key=["warehouse", "mce_contact_rows"],
    deps=[de_key("contacts")],
    group_name="warehouse",
    kinds={"salesforce", "duckdb"},
    pool="mce",  # mostly Retrieve calls; the warehouse is written at the end, briefly
    retry_policy=network_retry,
    automation_condition=FOLLOWS_INPUTS,  # after each sync into the DE, for the update file
    description="Contacts as MCE holds them now (Retrieve, paged), with the version (modified time) of each, "
    "to find profile changes made in MCE.",
)
def mce_contact_rows(mce: MceResource, warehouse: DuckDBResource) -> dg.MaterializeResult:
    key = default_config().export("contacts").de_key
    client = mce.client()
    with tempfile.TemporaryDirectory() as tmp:
        # Retrieved first (paged: minutes for a large DE), then swapped in: the single-writer
        # warehouse is open only for the swap, so other processes' steps can write meanwhile.
        saved = Path(tmp) / "mce_contact_rows.parquet"
        crm_updates.save_mce_rows(dex.retrieve_rows(client, key, crm_updates.MCE_ROW_COLUMNS), saved)
        with warehouse_connection(warehouse) as con:
            rows = crm_updates.replace_mce_rows(con, saved)
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, "data_extension": key})


def analytics_asset(table: str, deps: list[dg.AssetKey], description: str) -> dg.AssetsDefinition:
    key = dg.AssetKey(["warehouse", table])
    checks = analytics.CHECKS.get(table, ())

    @dg.asset(
        key=key,
        deps=deps,
        group_name="analytics",
        kinds={"duckdb"},
        pool="duckdb",
        automation_condition=FOLLOWS_INPUTS,
        description=description,
        check_specs=[
            dg.AssetCheckSpec(c.name, asset=key, description=c.description, blocking=c.blocking)
            for c in checks
        ],
    )
    def _table(warehouse: DuckDBResource) -> dg.MaterializeResult:
        with warehouse_connection(warehouse) as con:
            rows = analytics.build(con, table)
            metadata: dict[str, object] = {"dagster/row_count": rows, "preview": _preview(con, table)}
            if table == "campaign_performance":
                metadata["chart"] = _rates_chart(con)
            results = [_check_result(con, c) for c in checks]
        return dg.MaterializeResult(metadata=metadata, check_results=results)  # type: ignore[arg-type]

    return _table


def _check_result(con: object, check: analytics.TableCheck) -> dg.AssetCheckResult:
    count, examples = analytics.violations(con, check)  # type: ignore[arg-type]
    return dg.AssetCheckResult(
        check_name=check.name,
        passed=count == 0,
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
        metadata={
            "rows_breaking_it": count,
            "first_of_them": dg.MetadataValue.json(json.loads(json.dumps(examples, default=str))),
        },
    )


def _rates_chart(con: object) -> dg.MetadataValue:
    """Open, click, bounce and unsubscribe rates per send, as bars an analyst reads at a glance."""
    rows = con.execute(  # type: ignore[attr-defined]
        "SELECT send_id, open_rate, click_rate, bounce_rate, unsubscribe_rate FROM campaign_performance"
    ).fetchall()
    if not rows:
        return dg.MetadataValue.md("(no sends yet)")
    lines = ["| send | open % | click % | bounce % | unsub % |", "| --- | --- | --- | --- | --- |"]
    for send, *rates in rows:
        cells = [f"{'█' * int((r or 0) // 5)} {r or 0:.1f}" for r in rates]
        lines.append(f"| {send} | " + " | ".join(cells) + " |")
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(
    key=["crm", "updates_export"],
    group_name="crm_updates",
    kinds={"csv"},
    deps=[dg.AssetKey(["warehouse", "customer_360"]), dg.AssetKey(["warehouse", "mce_contact_rows"])],
    automation_condition=FOLLOWS_INPUTS,
    pool="duckdb",
    description="The CSV the CRM re-imports: unsubscribes, hard bounces, contact details changed in MCE (where "
    "MCE holds the CRM's latest version of the row) and engagement scores; formula-looking cells neutralised.",
)
def crm_updates_export(storage: PipelineStorage, warehouse: DuckDBResource) -> dg.MaterializeResult:
    url = f"{storage.crm_inbound_url.rstrip('/')}/nto_mce_updates.csv"
    with warehouse_connection(warehouse) as con:
        written = crm_updates.write_updates(con, url)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(written.rows.values()),
            "url": shown_url(url),
            **{f"rows_{k}": v for k, v in written.rows.items()},
            # Differences where MCE lacks the CRM's latest version: the CRM's own change, not sent back.
            "contact_details_held_back": written.held_back,
            # Contacts that hard-bounced only before the CRM gave them their current email: not flagged.
            "bounces_of_earlier_emails": written.earlier_email_bounces,
        }
    )


@dg.definitions
def warehouse_definitions() -> dg.Definitions:
    loads = [load_asset(e.dataset, f"crm_{e.dataset}") for e in default_config().crm_exports]
    loads.append(load_asset(default_config().web_analytics.dataset, "web_page_views"))
    tables = [
        analytics_asset(
            "email_engagement",
            [TRACKING],
            "Sends, opens, clicks, bounces and an engagement score per subscriber.",
        ),
        analytics_asset(
            "campaign_performance",
            [TRACKING],
            "Per send: sent, delivered, unique opens and clicks, bounces, unsubscribes and their rates.",
        ),
        analytics_asset(
            "engagement_by_region",
            [CONTACTS, dg.AssetKey(["warehouse", "email_engagement"])],
            "Subscribers, sends, opens and clicks per state.",
        ),
        analytics_asset(
            "customer_360",
            [CONTACTS, WEB, dg.AssetKey(["warehouse", "email_engagement"])],
            "One row per contact: CRM details, email engagement and web analytics.",
        ),
    ]
    return dg.Definitions(assets=[*loads, mce_contact_rows, *tables, crm_updates_export])
