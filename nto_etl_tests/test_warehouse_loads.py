"""Loading staged partitions into DuckDB while the contracts change: nothing loaded is lost."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from nto_etl.contracts.fields import mce_field
from nto_etl.warehouse.loads import WarehouseSchemaError, load_staged_partition


class Before(pa.DataFrameModel):
    key: Series[str] = mce_field("the key", max_length=10, primary_key=True, required=True)
    city: Series[str] = mce_field("a field later dropped", max_length=10, nullable=True)

    class Config:
        strict = True


class After(pa.DataFrameModel):
    key: Series[str] = mce_field("the key", max_length=10, primary_key=True, required=True)
    visits: Series[int] = mce_field("a field added", "Number", nullable=True)

    class Config:
        strict = True


class Retyped(pa.DataFrameModel):
    key: Series[str] = mce_field("the key", max_length=10, primary_key=True, required=True)
    city: Series[int] = mce_field("the same name, now a number", "Number", nullable=True)

    class Config:
        strict = True


def staged(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_fields_added_or_dropped_keep_every_row_loaded(tmp_path: Path) -> None:
    con = duckdb.connect()
    load_staged_partition(con, "t", Before, staged(tmp_path, "1.csv", 'key,city\n"A","Bend"\n'), "d1")
    later = staged(tmp_path, "2.csv", 'key,visits\n"B",3\n')
    assert load_staged_partition(con, "t", After, later, "d2") == 1
    assert load_staged_partition(con, "t", After, later, "d2") == 1  # again: replaced, not added
    rows = con.sql("SELECT key, city, visits, _partition FROM t ORDER BY key").fetchall()
    assert rows == [("A", "Bend", None, "d1"), ("B", None, 3, "d2")]


def test_a_field_whose_type_changed_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    con = duckdb.connect()
    load_staged_partition(con, "t", Before, staged(tmp_path, "1.csv", 'key,city\n"A","Bend"\n'), "d1")
    with pytest.raises(
        WarehouseSchemaError, match="table t: column city is VARCHAR but the contract Retyped"
    ):
        load_staged_partition(con, "t", Retyped, staged(tmp_path, "2.csv", 'key,city\n"B",3\n'), "d2")
    assert con.sql("SELECT key, city, _partition FROM t").fetchall() == [("A", "Bend", "d1")]
