"""Small helpers shared by the integration tests."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource
from sshfs import SSHFileSystem

from nto_etl import transfer
from nto_etl.defs.resources import PipelineStorage
from nto_etl.mce import data_extensions as dex
from nto_etl.mce.client import MceClient
from nto_etl.sync import Connect

CONTACTS_HEADER = (
    "customer_id,subscriber_key,email,first_name,last_name,phone,street,city,state,postal_code,"
    "country,locale,created_at,modified_at"
)


def contact(cid: str, **values: str) -> str:
    """One CRM contacts export line; `values` override the defaults."""
    row = {
        "customer_id": cid,
        "subscriber_key": f"K{cid}",
        "email": f"{cid.lower()}@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "phone": "",
        "street": "",
        "city": "",
        "state": "",
        "postal_code": "",
        "country": "US",
        "locale": "en-US",
        "created_at": "2026-01-01 09:00:00",
        "modified_at": "2026-01-02 09:00:00",
        **values,
    }
    return ",".join(row[c] for c in CONTACTS_HEADER.split(","))


def write_export(
    tmp_path: Path, lines: list[str], *, bom: bool = False, newline: str = "\r\n", name: str = "contacts.csv"
) -> Path:
    """A CRM export file of `lines`, written with the given line ending."""
    path = tmp_path / name
    path.write_bytes((("\ufeff" if bom else "") + newline.join(lines) + newline).encode("utf-8"))
    return path


CONTACT_FIELDS = (
    dex.DEField("SubscriberKey", "Text", 20, is_primary_key=True),
    dex.DEField("Email", "EmailAddress", is_required=True),
    dex.DEField("FirstName", "Text", 10),
    dex.DEField("Visits", "Number"),
    dex.DEField("Balance", "Decimal", precision=7, scale=2),
    dex.DEField("SignupDate", "Date"),
    dex.DEField("OptIn", "Boolean"),
)


def make_de(
    client: MceClient, key: str, fields: Sequence[dex.DEField] = CONTACT_FIELDS
) -> dex.DataExtensionSpec:
    spec = dex.DataExtensionSpec(key, key, tuple(fields))
    dex.create_data_extension(client, spec)
    return spec


def all_rows(client: MceClient, key: str, columns: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """DE rows keyed by their first column, values as MCE returns them."""
    rows: dict[str, dict[str, str | None]] = {}
    for page in dex.retrieve_rows(client, key, columns):
        for record in page.to_dict("records"):
            rows[record[columns[0]]] = {k: (None if v is None or v != v else v) for k, v in record.items()}
    return rows


def csv_text(header: Sequence[str], rows: Sequence[Sequence[object]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def put_import_file(sftp: SSHFileSystem, tmp_path: Path, name: str, text: str) -> None:
    local = tmp_path / name
    local.write_text(text, encoding="utf-8")
    transfer.upload_atomic(sftp, local, f"/Import/{name}")


def kept_open(con: duckdb.DuckDBPyConnection) -> Connect:
    """sync_partition's way to the warehouse for a test that keeps one connection open."""
    return lambda: nullcontext(con)


def one_writer_at_a_time(database: Path) -> Connect:
    """sync_partition's way to the warehouse as runs in processes of their own reach it: DuckDB
    lets one process at a time open the file, so each step's session excludes every other run's."""
    lock = threading.Lock()

    @contextmanager
    def connect() -> Iterator[duckdb.DuckDBPyConnection]:
        with lock, duckdb.connect(str(database), config={"custom_user_agent": "dagster"}) as con:
            yield con

    return connect


def staging_resources(storage: PipelineStorage, tmp_path: Path) -> dict[str, object]:
    """What the CRM chains' staging and loading assets need, for a test that runs them alone:
    the storage, and a warehouse of the test's own (staging reads what MCE holds from it)."""
    return {"storage": storage, "warehouse": DuckDBResource(database=str(tmp_path / "warehouse.duckdb"))}
