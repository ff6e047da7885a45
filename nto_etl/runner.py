"""Run the asset graph in-process over a range of days: what `nto-etl backfill` and the demo use."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, timedelta

import dagster as dg

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def days_between(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    if end < start:
        raise ValueError(f"--to {last} is before --from {first}")
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def assets_of(definitions: dg.Definitions) -> list[dg.AssetsDefinition]:
    return [a for a in definitions.assets or [] if isinstance(a, dg.AssetsDefinition)]


def partitioned_selection(definitions: dg.Definitions) -> dg.AssetSelection:
    graph = definitions.resolve_asset_graph()
    return dg.AssetSelection.assets(
        *[
            k
            for k in graph.get_all_asset_keys()
            if graph.get(k).is_partitioned and graph.get(k).is_materializable
        ]
    )


def materialize(
    definitions: dg.Definitions,
    selection: dg.AssetSelection,
    partitions: Iterable[str | None],
    report: Callable[[str, bool], None] = lambda label, ok: print(f"{label}: {'ok' if ok else 'FAILED'}"),
    label: str = "",
) -> bool:
    """Materialize `selection` for each partition in order; stops at the first failed run."""
    for partition in partitions:
        result = dg.materialize(
            assets_of(definitions),
            selection=selection,
            partition_key=partition,
            resources=definitions.resources,
            raise_on_error=False,
            run_config=QUIET,
        )
        report(f"{partition or 'unpartitioned'}{': ' + label if label else ''}", result.success)
        if not result.success:
            for event in result.get_step_failure_events():
                print(f"  {event.step_key}: {event.event_specific_data.error.message.strip()}")  # type: ignore[union-attr]
            return False
    return True
