"""The connection walk-through: the MCE client and staging exercised end to end against the local MCE.

`make demo` runs it until the Dagster pipeline takes over: ping, a data extension
derived from the Contact contract, each day's CRM contacts export staged (validated,
rejects written), uploaded atomically over SFTP, imported with an import definition,
then paged retrieval and an entity-login token. A second run imports nothing new:
the staged file's hash is recorded after each import.
"""

from __future__ import annotations

import json
from pathlib import Path

from nto_etl import transfer
from nto_etl.connections import local_settings
from nto_etl.contracts import Contact
from nto_etl.de_specs import de_spec
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import imports
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceNotFoundError
from nto_etl.mce_local import LocalMce
from nto_etl.staging import stage_export

CONTACTS = de_spec(Contact, "NTO_Contacts", "NTO Contacts")


def run_walkthrough(state_dir: Path, data_dir: Path) -> int:
    exports = sorted((data_dir / "sample" / "crm" / "contacts").glob("contacts_*.csv"))
    state_dir.mkdir(parents=True, exist_ok=True)
    ledger_path = state_dir / "imported.json"
    ledger: dict[str, str] = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
    with LocalMce(state_dir / "mce") as mce:
        mce_settings, sftp_settings = local_settings(mce.info)
        client = MceClient(mce_settings)
        status = client.ping()
        print(f"GetSystemStatus: {status.status} at {client.soap.endpoint}")
        try:
            dex.describe_data_extension(client, CONTACTS.customer_key)
            print(f"data extension {CONTACTS.customer_key} exists")
        except MceNotFoundError:
            dex.create_data_extension(client, CONTACTS)
            print(
                f"data extension {CONTACTS.customer_key} created from the Contact contract "
                f"({len(CONTACTS.fields)} fields, sendable on subscriber_key)"
            )
        fs = transfer.open_sftp(sftp_settings)
        spec = imports.ImportSpec("NTO_Contacts_Import", CONTACTS.customer_key, "nto_contacts.csv")
        for export in exports:
            staged = stage_export(str(export), Contact, state_dir / "staging")
            print(
                f"{export.name}: {staged.rows_read} rows read, {staged.rows_staged} staged, "
                f"{staged.rows_rejected} rejected, {staged.duplicates_superseded} duplicate keys resolved "
                f"(rejects in {staged.rejects_path})"
            )
            digest = transfer.sha256_file(staged.staged_path)
            if digest in ledger:
                print(f"  already imported as task {ledger[digest]}: nothing to do")
                continue
            uploaded = transfer.upload_atomic(fs, staged.staged_path, "/Import/nto_contacts.csv")
            imports.ensure_import_definition(client, spec)
            task_id = imports.start_import(client, spec.customer_key)
            result = imports.check_import(
                imports.wait_for_import(client, task_id, timeout=300), allow_errors=spec.allow_errors
            )
            print(
                f"  uploaded {uploaded.size} bytes; import task {task_id}: {result.status}, "
                f"{result.successful} of {result.total_rows} rows imported, {result.errors} in error"
            )
            ledger[digest] = task_id
            ledger_path.write_text(json.dumps(ledger, indent=2))
        rows = sum(len(page) for page in dex.retrieve_rows(client, CONTACTS.customer_key, ["subscriber_key"]))
        print(f"{CONTACTS.customer_key} holds {rows} rows")
        token = client.get_user_token()
        print(f"entity direct login: a user token for {token.login_url}")
        print(f"state kept in {state_dir}")
    return 0
