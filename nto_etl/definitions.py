"""The code location: every module under nto_etl/defs is loaded."""

import dagster as dg

import nto_etl.defs


@dg.definitions
def defs() -> dg.Definitions:
    return dg.components.load_defs(nto_etl.defs)
