"""A data extension's definition derived from its data contract (never written by hand)."""

from __future__ import annotations

import pandera.pandas as pa

from nto_etl.contracts import dataset_info, de_fields
from nto_etl.mce.data_extensions import DataExtensionSpec


def de_spec(model: type[pa.DataFrameModel], customer_key: str, name: str | None = None) -> DataExtensionSpec:
    info = dataset_info(model)
    return DataExtensionSpec(
        customer_key=customer_key,
        name=name or customer_key,
        fields=de_fields(model),
        description=(model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else "",
        sendable_field=info.sendable_field,
    )
