"""Send jobs into DuckDB: each send's email name, subject and send time, from the tracking
extract's SendJobs.csv, so that campaign performance can say which email a send was.

A send is in every extract whose window holds its send time (with the tracking partitions'
overlap, two days' extracts): a send's newest row replaces the one before, so a re-read
changes nothing, and a re-run of an old day takes back what MCE says of its sends now.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from nto_etl.contracts import SendJob, de_fields
from nto_etl.mce.tracking import is_send_jobs_file
from nto_etl.sql import insert_frame, registered, transaction
from nto_etl.staging import validate_chunk
from nto_etl.warehouse.loads import ensure_table
from nto_etl.warehouse.tracking import (
    MCE_EXTRACT_DATES,
    EventFile,
    EventFileError,
    as_contract_text,
    unpacked,
)

RENAMES = {
    "SendID": "send_id",
    "EmailName": "email_name",
    "Subject": "subject",
    "SendDefinitionExternalKey": "send_definition_key",
    "TriggeredSendExternalKey": "triggered_send_key",
    "SchedTime": "sched_time",
    "SentTime": "sent_time",
    "JobStatus": "job_status",
}


def send_jobs_file(archive: Path, into: Path) -> EventFile | None:
    """The SendJobs.csv of a tracking extract zip, unpacked into `into`; None if it has none."""
    paths = unpacked(archive, into, is_send_jobs_file)
    if not paths:
        return None
    return EventFile(paths[0], RENAMES, MCE_EXTRACT_DATES, date_columns=("sched_time", "sent_time"))


def merge_send_jobs(con: duckdb.DuckDBPyConnection, file: EventFile, partition: str) -> int:
    """Validate every row against the SendJob contract, then replace those sends' rows; returns
    the sends merged. One invalid row fails the merge, with its row, column and check, and
    nothing of the file is kept."""
    ensure_table(con, "send_jobs", SendJob)
    fields = de_fields(SendJob)
    names = [f.name for f in fields]
    rows = con.execute(as_contract_text(file, names)).df()
    rows.index += 1  # the row's number in the file, as the events' errors give it
    rows["__line"] = rows.index
    valid, rejects = validate_chunk(rows, SendJob, fields)
    if not rejects.empty:
        raise EventFileError(file.path, rejects.reset_index(drop=True), what="send jobs")
    valid = valid.drop_duplicates("send_id", keep="last").assign(_partition=partition)
    with transaction(con), registered(con, "__send_jobs", valid[["send_id"]]):
        con.execute("DELETE FROM send_jobs WHERE send_id IN (SELECT send_id FROM __send_jobs)")
        insert_frame(con, "send_jobs", valid, [*names, "_partition"])
    return len(valid)
