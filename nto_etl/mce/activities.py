"""Query activities, data filters, email sends, extracts and file transfers over SOAP.

Each `run_*` creates or updates its definition (by external key) and starts it;
MCE's refusals (a syntax error in a query, a row the target refuses) come back as
typed errors with MCE's message.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fsspec import AbstractFileSystem

from nto_etl import transfer
from nto_etl.mce import rules
from nto_etl.mce.client import MceClient, raise_for_results
from nto_etl.mce.data_extensions import describe_data_extension
from nto_etl.mce.errors import MceError, error_for_code

DE_EXTRACT = "bb94a04d-9632-4623-be47-daabc3f588a6"
TRACKING_EXTRACT = "c7219016-a7f0-4c72-8657-1ec12c28a0db"
TARGET_UPDATE_TYPES = ("Overwrite", "Update", "Append")
TRACKING_EVENTS = ("Sent", "Opens", "Clicks", "Bounces", "Unsubs")
EXPORT_FOLDER = "/Export"


@dataclass(frozen=True)
class ActivityResult:
    task_id: str | None
    message: str


@dataclass(frozen=True)
class QuerySpec:
    customer_key: str
    query_text: str
    target_key: str
    target_name: str
    target_update_type: str = "Overwrite"
    name: str = ""

    def __post_init__(self) -> None:
        if self.target_update_type not in TARGET_UPDATE_TYPES:
            raise ValueError(f"TargetUpdateType must be one of {', '.join(TARGET_UPDATE_TYPES)}")


@dataclass(frozen=True)
class FilterSpec:
    customer_key: str
    source_key: str
    destination_key: str
    data_filter: Any  # a SimpleFilterPart / ComplexFilterPart from client.simple_filter / all_of / any_of
    name: str = ""


def _exists(client: MceClient, object_type: str, key: str) -> Any | None:
    found = client.retrieve_all(
        object_type, ["ObjectID", "CustomerKey"], client.simple_filter("CustomerKey", "equals", key)
    )
    return found[0] if found else None


def _save(client: MceClient, object_type: str, obj: Any, key: str) -> Any:
    existing = _exists(client, object_type, key)
    results = client.update([obj]) if existing else client.create([obj])
    raise_for_results(results, f"{'Update' if existing else 'Create'} {object_type} {key}")
    return _exists(client, object_type, key)


def _start(client: MceClient, object_type: str, key: str) -> ActivityResult:
    results = client.perform("start", [getattr(client.types, object_type)(CustomerKey=key)])
    task = results[0].Task
    if task is not None and task.StatusCode not in (None, "OK"):
        raise error_for_code(task.ErrorCode, task.StatusMessage or "failed", f"{object_type} {key}")
    return ActivityResult(
        str(task.ID) if task is not None and task.ID else None,
        str(task.StatusMessage if task is not None else results[0].StatusMessage),
    )


def run_query(client: MceClient, spec: QuerySpec) -> ActivityResult:
    """Create/update the QueryDefinition and run it; the result says how many rows went where."""
    t = client.types
    query = t.QueryDefinition(
        CustomerKey=spec.customer_key,
        Name=spec.name or spec.customer_key,
        QueryText=spec.query_text,
        TargetType="DE",
        TargetUpdateType=spec.target_update_type,
        DataExtensionTarget=t.InteractionBaseObject(CustomerKey=spec.target_key, Name=spec.target_name),
    )
    _save(client, "QueryDefinition", query, spec.customer_key)
    return _start(client, "QueryDefinition", spec.customer_key)


def run_filter(client: MceClient, spec: FilterSpec) -> ActivityResult:
    """Create/update the FilterDefinition and its FilterActivity into the destination DE, and run it."""
    t = client.types
    definition = _save(
        client,
        "FilterDefinition",
        t.FilterDefinition(
            CustomerKey=spec.customer_key,
            Name=spec.name or spec.customer_key,
            DataSource=t.DataExtension(CustomerKey=spec.source_key),
            DataFilter=spec.data_filter,
        ),
        spec.customer_key,
    )
    source = describe_data_extension(client, spec.source_key)
    destination = describe_data_extension(client, spec.destination_key)
    activity_key = f"{spec.customer_key}_activity"
    _save(
        client,
        "FilterActivity",
        t.FilterActivity(
            CustomerKey=activity_key,
            Name=f"{spec.name or spec.customer_key} activity",
            FilterDefinitionID=definition.ObjectID,
            SourceObjectID=source.object_id,
            SourceTypeID=2,
            DestinationObjectID=destination.object_id,
            DestinationTypeID=2,
        ),
        activity_key,
    )
    return _start(client, "FilterActivity", activity_key)


def start_send(client: MceClient, customer_key: str, de_key: str, subject: str) -> ActivityResult:
    """Send to a sendable DE through an EmailSendDefinition; the task id is the send's JobID."""
    t = client.types
    de = describe_data_extension(client, de_key)
    _save(
        client,
        "EmailSendDefinition",
        t.EmailSendDefinition(
            CustomerKey=customer_key,
            Name=customer_key,
            EmailSubject=subject,
            SendDefinitionList=[
                t.SendDefinitionList(CustomObjectID=de.object_id, DataSourceTypeID="CustomObject")
            ],
        ),
        customer_key,
    )
    return _start(client, "EmailSendDefinition", customer_key)


def _extract(client: MceClient, extract_id: str, parameters: dict[str, str]) -> None:
    response = client.soap.call(
        "Extract",
        idempotent=True,
        Requests=[
            {
                "ID": extract_id,
                "Options": {},
                "Parameters": {"Parameter": [{"Name": k, "Value": v} for k, v in parameters.items()]},
            }
        ],
    )
    results = list(response.Results.ExtractResult) if response.Results else []
    failed = [r for r in results if r.StatusCode != "OK"]
    if failed or response.OverallStatus != "OK":
        first = failed[0] if failed else None
        raise error_for_code(
            first.ErrorCode if first else None,
            (first.StatusMessage if first else None) or str(response.OverallStatus),
            "Extract",
        )


def extract_data_extension(client: MceClient, de_key: str, file_name: str) -> None:
    """A data-extension extract (CSV with headers) into the Safehouse."""
    _extract(
        client,
        DE_EXTRACT,
        {
            "DECustomerKey": de_key,
            "HasColumnHeaders": "true",
            "_AsyncID": "0",
            "OutputFileName": file_name,
            "StartDate": "1/1/1900 1:00:00 AM",
            "EndDate": "1/1/1900 1:00:00 AM",
        },
    )


def extract_tracking(
    client: MceClient,
    start: datetime,
    end: datetime,
    file_name: str,
    events: Sequence[str] = TRACKING_EVENTS,
    *,
    send_jobs: bool = True,
) -> None:
    """A tracking extract (zip of per-event CSVs) of events between start and end, MCE time;
    with `send_jobs`, SendJobs.csv too: each send's email name, subject and send time."""
    fmt = rules.RENDER_DATE_FORMAT
    parameters = {
        "StartDate": start.strftime(fmt),
        "EndDate": end.strftime(fmt),
        "OutputFileName": file_name,
        "Format": "csv",
        "IncludeTestSends": "false",
        "UnicodeOutput": "true",
    }
    parameters.update({f"Extract{e}": "true" for e in events})
    if send_jobs:
        parameters["ExtractSendJobs"] = "true"
    _extract(client, TRACKING_EXTRACT, parameters)


def start_file_transfer(client: MceClient, customer_key: str) -> ActivityResult:
    """Perform a FileTransferActivity (set up in the MCE UI) moving Safehouse files to /Export."""
    return _start(client, "FileTransferActivity", customer_key)


def download_export(fs: AbstractFileSystem, file_name: str, local_dir: Path) -> transfer.Transferred:
    path = posixpath.join(EXPORT_FOLDER, file_name)
    if not fs.exists(path):
        raise MceError(
            f"{file_name} is not in {EXPORT_FOLDER}: did the file transfer run?", operation="download"
        )
    return transfer.download(fs, path, local_dir / file_name)
