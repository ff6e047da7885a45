"""The asset graph wired to a local MCE, a CRM drop and a work folder: for drills, soaks, tests and demos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from nto_etl import runner
from nto_etl.connections import local_settings
from nto_etl.defs import resources as resource_module
from nto_etl.defs.resources import MceResource, PipelineStorage
from nto_etl.mce.client import MceClient
from nto_etl.mce_local import LocalMce
from nto_etl.warehouse.connection import warehouse_config


class LocalPipeline:
    def __init__(
        self, root: Path, mce: LocalMce, drop: Path, web: Path | None = None, **mce_options: Any
    ) -> None:
        from nto_etl.definitions import defs

        self.root, self.mce = root, mce
        root.mkdir(parents=True, exist_ok=True)
        info = root / "mce-local.json"
        info.write_text(mce.info.to_json())
        info.chmod(0o600)
        self.resources: dict[str, Any] = {
            "mce": MceResource(local_info=str(info), **mce_options),
            "storage": PipelineStorage(
                crm_drop_url=str(drop),
                web_analytics_url=str(web or drop),
                crm_inbound_url=str(root / "inbound"),
                work_dir=str(root / "work"),
            ),
            "warehouse": DuckDBResource(
                database=str(root / "warehouse.duckdb"), connection_config=warehouse_config()
            ),
        }
        self.definitions = defs()
        self.assets = runner.assets_of(self.definitions)
        self.client = MceClient(local_settings(mce.info)[0])

    def run(
        self,
        selection: dg.AssetSelection,
        partition: str | None = None,
        ops: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dg.ExecuteInProcessResult:
        """Materialize `selection`; `ops`: each asset's run config, by op name."""
        resource_module._status_checked.clear()  # a fresh run checks GetSystemStatus again
        return dg.materialize(
            self.assets,
            selection=selection,
            partition_key=partition,
            resources=self.resources,
            raise_on_error=False,
            run_config={**runner.QUIET, "ops": {op: {"config": c} for op, c in (ops or {}).items()}},
            **kwargs,
        )

    def sql(self, query: str) -> list[tuple]:
        # The same configuration as dagster-duckdb's connections, so a leaked one cannot block this.
        with duckdb.connect(
            str(self.root / "warehouse.duckdb"), config={"custom_user_agent": "dagster"}
        ) as con:
            return con.execute(query).fetchall()

    def calls(self, op: str) -> int:
        return self.mce.service.calls.get(op, 0)

    def imports_started(self) -> int:
        """Import tasks MCE has ever started (one ImportResultsSummary each)."""
        return len(self.mce.store.find("ImportResultsSummary"))
