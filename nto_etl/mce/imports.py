"""Import definitions: a file on the Enhanced FTP `/Import` into a data extension.

Create or update the definition, Perform `start` (returns the task id), then poll
`ImportResultsSummary` with backoff until a terminal status or a deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from nto_etl.mce.client import MceClient, raise_for_results
from nto_etl.mce.errors import ImportFailure, MceConfigurationError, MceImportError, MceTimeoutError

log = logging.getLogger(__name__)

UPDATE_TYPES = ("AddAndUpdate", "AddAndDoNotUpdate", "UpdateButDoNotAdd", "Merge", "Overwrite", "ColumnBased")
FieldMapping = Literal["InferFromColumnHeadings", "MapByOrdinal", "ManualMap"]
ENHANCED_FTP = "ExactTarget Enhanced FTP"
TERMINAL_STATUSES = ("Completed", "Error")
SUMMARY_PROPERTIES = (
    "ImportDefinitionCustomerKey",
    "TaskResultID",
    "ImportStatus",
    "ImportType",
    "StartDate",
    "EndDate",
    "DestinationID",
    "TotalRows",
    "NumberSuccessful",
    "NumberErrors",
    "NumberDuplicated",
    "NumberRestricted",
)


@dataclass(frozen=True)
class FieldMap:
    """One manual map: a source column (by name or 0-based ordinal) into a DE field."""

    destination: str
    source_name: str | None = None
    source_ordinal: int | None = None


@dataclass(frozen=True)
class ImportSpec:
    customer_key: str
    destination_key: str
    file_spec: str
    name: str = ""
    update_type: str = "AddAndUpdate"
    field_mapping: FieldMapping = "InferFromColumnHeadings"
    field_maps: tuple[FieldMap, ...] = ()
    delimiter: str = ","
    header_lines: int = 1
    allow_errors: bool = True
    file_type: str = "CSV"
    location_key: str = ENHANCED_FTP
    allow_overwrite: bool = False

    def __post_init__(self) -> None:
        if self.update_type not in UPDATE_TYPES:
            raise MceConfigurationError(
                f"import {self.customer_key}: unknown UpdateType {self.update_type!r}"
            )
        if self.update_type == "Overwrite" and not self.allow_overwrite:
            raise MceConfigurationError(
                f"import {self.customer_key}: UpdateType Overwrite erases every row of "
                f"{self.destination_key}; it is refused unless the data extension is configured with "
                "allow_overwrite"
            )
        if self.field_mapping == "ManualMap" and not self.field_maps:
            raise MceConfigurationError(f"import {self.customer_key}: ManualMap needs field_maps")


@dataclass(frozen=True)
class ImportResult:
    """ImportResultsSummary of one run."""

    task_id: str
    status: str
    total_rows: int
    successful: int
    errors: int
    duplicates: int
    restricted: int
    started: str | None
    ended: str | None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


def _definition(client: MceClient, spec: ImportSpec) -> Any:
    t = client.types
    maps = None
    if spec.field_mapping == "ManualMap":
        # SourceName and SourceOrdinal are an xsd:choice: send exactly one of them. zeep drops a falsy
        # choice value (ordinal 0), so the ordinal goes as text; the schema type is still xsd:int.
        maps = {
            "FieldMap": [
                t.FieldMap(
                    DestinationName=m.destination,
                    **(
                        {"SourceOrdinal": str(m.source_ordinal)}
                        if m.source_ordinal is not None
                        else {"SourceName": m.source_name}
                    ),
                )
                for m in spec.field_maps
            ]
        }
    return t.ImportDefinition(
        CustomerKey=spec.customer_key,
        Name=spec.name or spec.customer_key,
        AllowErrors=spec.allow_errors,
        DestinationObject=t.DataExtension(CustomerKey=spec.destination_key),
        FieldMappingType=spec.field_mapping,
        FieldMaps=maps,
        FileSpec=spec.file_spec,
        FileType=spec.file_type,
        RetrieveFileTransferLocation=t.FileTransferLocation(CustomerKey=spec.location_key),
        UpdateType=spec.update_type,
        Delimiter=spec.delimiter,
        HeaderLines=spec.header_lines,
    )


def ensure_import_definition(client: MceClient, spec: ImportSpec) -> None:
    """Create the definition, or update it in place when the key exists."""
    existing = client.retrieve_all(
        "ImportDefinition", ["CustomerKey"], client.simple_filter("CustomerKey", "equals", spec.customer_key)
    )
    definition = _definition(client, spec)
    if existing:
        raise_for_results(client.update([definition]), f"Update ImportDefinition {spec.customer_key}")
    else:
        raise_for_results(client.create([definition]), f"Create ImportDefinition {spec.customer_key}")


def start_import(client: MceClient, customer_key: str) -> str:
    """Perform `start`; returns the task id (= ImportResultsSummary.TaskResultID)."""
    results = client.perform("start", [client.types.ImportDefinition(CustomerKey=customer_key)])
    task = results[0].Task
    return str(task.ID)


def import_summary(client: MceClient, task_id: str) -> ImportResult | None:
    found = client.retrieve_all(
        "ImportResultsSummary", SUMMARY_PROPERTIES, client.simple_filter("TaskResultID", "equals", task_id)
    )
    if not found:
        return None
    s = found[0]
    return ImportResult(
        task_id=str(s.TaskResultID or task_id),
        status=str(s.ImportStatus or "Unknown"),
        total_rows=int(s.TotalRows or 0),
        successful=int(s.NumberSuccessful or 0),
        errors=int(s.NumberErrors or 0),
        duplicates=int(s.NumberDuplicated or 0),
        restricted=int(s.NumberRestricted or 0),
        started=str(s.StartDate) if s.StartDate else None,
        ended=str(s.EndDate) if s.EndDate else None,
    )


def wait_for_import(
    client: MceClient,
    task_id: str,
    *,
    timeout: float = 3600.0,
    first_poll: float = 0.25,
    growth: float = 1.5,
    max_poll: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ImportResult:
    """Poll ImportResultsSummary until Completed/Error; MceTimeoutError past the deadline.

    The wait between polls grows by `growth` up to `max_poll`: a small import is seen done soon
    after it ends (at most half its run time late), a long one is polled a few times a minute."""
    deadline = clock() + timeout
    delay = first_poll
    while True:
        summary = import_summary(client, task_id)
        if summary is not None and summary.finished:
            return summary
        if clock() + delay > deadline:
            status = summary.status if summary else "not yet reported"
            raise MceTimeoutError(
                f"import task {task_id} still {status} after {timeout:.0f}s; it may finish later: "
                "check ImportResultsSummary before starting it again",
                operation="ImportDefinition",
            )
        sleep(delay)
        delay = min(delay * growth, max_poll)


def check_import(result: ImportResult, *, allow_errors: bool, message: str = "") -> ImportResult:
    """Raise MceImportError for a run that ended in Error, or has errors when none are allowed."""
    if result.status == "Error" or (result.errors and not allow_errors):
        raise MceImportError(
            ImportFailure(
                task_id=result.task_id,
                status=result.status,
                total_rows=result.total_rows,
                successful=result.successful,
                errors=result.errors,
                duplicates=result.duplicates,
                message=message,
            )
        )
    return result


def run_import(client: MceClient, spec: ImportSpec, *, timeout: float = 3600.0) -> ImportResult:
    """Ensure the definition, start it and wait: the whole import in one call."""
    ensure_import_definition(client, spec)
    task_id = start_import(client, spec.customer_key)
    log.info("import %s started as task %s", spec.customer_key, task_id)
    result = wait_for_import(client, task_id, timeout=timeout)
    return check_import(result, allow_errors=spec.allow_errors)
