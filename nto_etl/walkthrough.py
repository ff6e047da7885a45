"""The connection walk-through: every piece of the MCE client exercised against the local MCE.

`make demo` runs it until the Dagster pipeline takes over: ping, a data extension,
an atomic SFTP upload, an import definition, paged retrieval, an entity login token.
A second run imports nothing new: the file's hash is recorded after each import.
"""

from __future__ import annotations

import json
from pathlib import Path

from nto_etl import transfer
from nto_etl.connections import local_settings
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import imports
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceNotFoundError
from nto_etl.mce_local import LocalMce

CONTACTS = dex.DataExtensionSpec(
    customer_key="NTO_Contacts",
    name="NTO Contacts",
    description="CRM contacts for the welcome email and newsletter",
    fields=(
        dex.DEField("SubscriberKey", "Text", 36, is_primary_key=True),
        dex.DEField("EmailAddress", "EmailAddress", 254, is_required=True),
        dex.DEField("FirstName", "Text", 100),
        dex.DEField("State", "Text", 2),
        dex.DEField("PostalCode", "Text", 10),
        dex.DEField("OptIn", "Boolean", default_value="false"),
        dex.DEField("CreatedDate", "Date"),
    ),
    sendable_field="SubscriberKey",
)


def run_walkthrough(state_dir: Path, data_dir: Path) -> int:
    source = data_dir / "sample" / "contacts.csv"
    state_dir.mkdir(parents=True, exist_ok=True)
    ledger_path = state_dir / "imported.json"
    ledger: dict[str, str] = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
    with LocalMce(state_dir / "mce") as mce:
        mce_settings, sftp_settings = local_settings(mce.info)
        client = MceClient(mce_settings)
        status = client.ping()
        print(f"1. GetSystemStatus: {status.status} at {client.soap.endpoint}")
        try:
            dex.describe_data_extension(client, CONTACTS.customer_key)
            print(f"2. data extension {CONTACTS.customer_key} exists")
        except MceNotFoundError:
            dex.create_data_extension(client, CONTACTS)
            print(
                f"2. data extension {CONTACTS.customer_key} created ({len(CONTACTS.fields)} fields, sendable)"
            )
        digest = transfer.sha256_file(source)
        if ledger.get(digest):
            print(
                f"3-4. {source.name} (sha256 {digest[:12]}) was imported as task {ledger[digest]}: nothing to do"
            )
        else:
            fs = transfer.open_sftp(sftp_settings)
            uploaded = transfer.upload_atomic(fs, source, "/Import/nto_contacts.csv")
            print(f"3. uploaded {uploaded.size} bytes to {uploaded.path} (sha256 {uploaded.sha256[:12]})")
            spec = imports.ImportSpec("NTO_Contacts_Import", CONTACTS.customer_key, "nto_contacts.csv")
            imports.ensure_import_definition(client, spec)
            task_id = imports.start_import(client, spec.customer_key)
            result = imports.wait_for_import(client, task_id, timeout=300)
            print(
                f"4. import task {task_id}: {result.status}, {result.successful} of {result.total_rows} rows "
                f"imported, {result.errors} in error, {result.duplicates} duplicated"
            )
            imports.check_import(result, allow_errors=spec.allow_errors)
            ledger[digest] = task_id
            ledger_path.write_text(json.dumps(ledger, indent=2))
        rows = sum(
            len(page) for page in dex.retrieve_rows(client, CONTACTS.customer_key, ["SubscriberKey", "State"])
        )
        print(f"5. {CONTACTS.customer_key} holds {rows} rows")
        token = client.get_user_token()
        print(f"6. entity direct login: a user token for {token.login_url}")
        print(f"state kept in {state_dir}")
    return 0
