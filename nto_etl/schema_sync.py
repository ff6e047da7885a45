"""Keep a data extension in step with its contract, within what MCE allows.

New fields are added; a longer text field is lengthened. What MCE forbids (changing a
field's type, shrinking it, changing the primary key) is refused with a message that
says what to do, before any row moves.
"""

from __future__ import annotations

from dataclasses import replace

from nto_etl.mce import data_extensions as dex
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceError, MceNotFoundError


class SchemaChangeError(MceError):
    """The contract asks for a change MCE cannot make to an existing data extension."""


def ensure_data_extension(client: MceClient, spec: dex.DataExtensionSpec) -> str:
    """Create the DE, or add the fields the contract gained; returns what was done."""
    try:
        current = dex.describe_data_extension(client, spec.customer_key)
    except MceNotFoundError:
        dex.create_data_extension(client, spec)
        return "created"
    have = {f.name.lower(): f for f in current.fields}
    problems: list[str] = []
    to_add: list[dex.DEField] = []
    for wanted in spec.fields:
        existing = have.get(wanted.name.lower())
        if existing is None:
            if wanted.is_primary_key:
                problems.append(f"{wanted.name} would become part of the primary key")
            else:
                to_add.append(replace(wanted, is_required=False) if wanted.is_required else wanted)
            continue
        if existing.field_type != wanted.field_type:
            problems.append(
                f"{wanted.name} is {existing.field_type} in MCE but {wanted.field_type} in the contract"
            )
        elif wanted.max_length and existing.max_length and wanted.max_length < existing.max_length:
            problems.append(
                f"{wanted.name} would shrink from {existing.max_length} to {wanted.max_length} characters"
            )
        elif wanted.max_length and existing.max_length and wanted.max_length > existing.max_length:
            to_add.append(wanted)  # MCE lengthens a text field in place
        if existing.is_primary_key != wanted.is_primary_key:
            problems.append(
                f"{wanted.name} would {'join' if wanted.is_primary_key else 'leave'} the primary key"
            )
    if problems:
        raise SchemaChangeError(
            f"data extension {spec.customer_key} cannot follow its contract: "
            + "; ".join(problems)
            + ". MCE cannot change field types, shrink fields or change primary keys: add a new field "
            "or create a new data extension (a new de_key in pipeline.yaml) and migrate",
            operation="ensure data extension",
        )
    if to_add:
        dex.add_fields(client, spec.customer_key, to_add)
        return "fields added or lengthened: " + ", ".join(f.name for f in to_add)
    return "unchanged"
