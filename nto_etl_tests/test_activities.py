"""Query activities, data filters, extracts and file transfers, through the real client to the local MCE."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from sshfs import SSHFileSystem

from nto_etl.mce import activities as act
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import tracking as trk
from nto_etl.mce.client import MceClient
from nto_etl.mce.errors import MceValidationError
from nto_etl.mce_local import LocalMce
from nto_etl.mce_local.clock import advance, mce_now
from nto_etl.warehouse.send_jobs import merge_send_jobs, send_jobs_file
from nto_etl.warehouse.tracking import EventFileError, extract_files, merge_event_files, merge_events
from nto_etl_tests.helpers import all_rows

FIELDS = (
    dex.DEField("SubscriberKey", "Text", 20, is_primary_key=True),
    dex.DEField("Email", "EmailAddress"),
    dex.DEField("State", "Text", 2),
)
STATES = ["OR", "WA", "CA", "NV"]


@pytest.fixture
def audience(client: MceClient, key: str) -> tuple[str, pd.DataFrame]:
    """A sendable DE of 400 subscribers across four states."""
    dex.create_data_extension(client, dex.DataExtensionSpec(key, key, FIELDS, sendable_field="SubscriberKey"))
    rows = pd.DataFrame(
        {
            "SubscriberKey": [f"S{i:04d}" for i in range(400)],
            "Email": [f"s{i}@example.com" for i in range(400)],
            "State": [STATES[i % 4] for i in range(400)],
        }
    )
    assert dex.upsert_rows(client, key, rows.to_dict("records")).saved == 400
    return key, rows


def segment(client: MceClient, key: str, fields: tuple[dex.DEField, ...] = FIELDS) -> str:
    dex.create_data_extension(client, dex.DataExtensionSpec(key, key, fields))
    return key


def keys_of(client: MceClient, de: str) -> list[str]:
    return sorted(all_rows(client, de, ["SubscriberKey"]))


def test_region_query_with_each_target_update_type(
    client: MceClient, audience: tuple[str, pd.DataFrame]
) -> None:
    source, rows = audience
    target = segment(client, source + "_or")
    oregon = sorted(rows.loc[rows.State == "OR", "SubscriberKey"])
    washington = sorted(rows.loc[rows.State == "WA", "SubscriberKey"])

    def query(state: str, update: str) -> act.ActivityResult:
        return act.run_query(
            client,
            act.QuerySpec(
                f"{target}_q",
                f"SELECT SubscriberKey, Email, State FROM [{source}] WHERE State = '{state}'",
                target,
                target,
                update,
            ),
        )

    result = query("OR", "Overwrite")
    assert result.message == f"{len(oregon)} rows written to {target} (Overwrite)"
    assert keys_of(client, target) == oregon
    query("WA", "Append")
    assert keys_of(client, target) == sorted(oregon + washington)
    query("WA", "Overwrite")
    assert keys_of(client, target) == washington
    dex.upsert_rows(client, source, [{"SubscriberKey": washington[0], "Email": "moved@example.com"}])
    query("WA", "Update")
    assert all_rows(client, target, ["SubscriberKey", "Email"])[washington[0]]["Email"] == "moved@example.com"
    with pytest.raises(MceValidationError, match="PRIMARY KEY") as info:
        query("WA", "Append")  # every row's key is taken: the single INSERT fails as a whole
    assert "nothing was written" in str(info.value)
    assert keys_of(client, target) == washington


def test_query_syntax_error_is_a_typed_error_with_mce_message(
    client: MceClient, audience: tuple[str, pd.DataFrame]
) -> None:
    source, _ = audience
    target = segment(client, source + "_bad")
    with pytest.raises(MceValidationError, match="An error occurred while checking the query syntax") as info:
        act.run_query(
            client,
            act.QuerySpec(f"{target}_q", f"SELECT SubscriberKey FROM [{source}] WHERE", target, target),
        )
    assert info.value.code == 310007
    with pytest.raises(MceValidationError, match="Only one SELECT"):
        act.run_query(client, act.QuerySpec(f"{target}_d", f"DELETE FROM [{source}]", target, target))


def test_query_rows_the_target_refuses_fail_the_query_and_write_nothing(
    client: MceClient, audience: tuple[str, pd.DataFrame]
) -> None:
    source, _ = audience
    narrow = segment(
        client,
        source + "_n",
        (dex.DEField("SubscriberKey", "Text", 20, is_primary_key=True), dex.DEField("State", "Text", 1)),
    )
    with pytest.raises(MceValidationError, match="exceeds the maximum length of 1"):
        act.run_query(
            client,
            act.QuerySpec(f"{narrow}_q", f"SELECT SubscriberKey, State FROM [{source}]", narrow, narrow),
        )
    assert keys_of(client, narrow) == []


@pytest.fixture
def sent(local_mce: LocalMce, audience: tuple[str, pd.DataFrame]) -> tuple[str, int, datetime]:
    source, _ = audience
    sent_at = datetime.now() - timedelta(days=5)
    send_id, recipients = local_mce.send(source, sent_at=sent_at, seed=11)
    assert recipients == 400
    return source, send_id, sent_at


def events_frame(client: MceClient, start: datetime, end: datetime) -> pd.DataFrame:
    return pd.concat([p for ot in trk.EVENT_OBJECTS for p in trk.retrieve_events(client, ot, start, end)])


def test_not_opened_filter_matches_an_independent_computation(
    client: MceClient, sent: tuple[str, int, datetime]
) -> None:
    source, send_id, sent_at = sent
    flags = segment(client, source + "_eng", (*FIELDS, dex.DEField("Opened", "Boolean")))
    act.run_query(
        client,
        act.QuerySpec(
            f"{flags}_q",
            f"SELECT s.SubscriberKey, s.Email, s.State, CASE WHEN EXISTS (SELECT 1 FROM _Open o WHERE "
            f"o.SubscriberKey = s.SubscriberKey AND o.JobID = {send_id} AND o.EventDate >= DATEADD(day, -30, GETDATE())) "
            f"THEN 1 ELSE 0 END AS Opened FROM [{source}] s",
            flags,
            flags,
        ),
    )
    target = segment(client, source + "_noopen", (*FIELDS, dex.DEField("Opened", "Boolean")))
    act.run_filter(
        client,
        act.FilterSpec(f"{target}_f", flags, target, client.simple_filter("Opened", "equals", "false")),
    )

    events = events_frame(client, sent_at - timedelta(days=1), datetime.now() + timedelta(days=1))
    events = events[events.send_id == send_id]  # other tests' sends share the local MCE
    openers = set(events.loc[events.event_type == "Open", "subscriber_key"])
    everyone = set(events.loc[events.event_type == "Sent", "subscriber_key"])
    assert 0 < len(openers) < len(everyone)
    assert keys_of(client, target) == sorted(everyone - openers)


def test_survey_response_filter_matches_pandas(client: MceClient, key: str) -> None:
    fields = (
        dex.DEField("SubscriberKey", "Text", 20, is_primary_key=True),
        dex.DEField("Score", "Number"),
        dex.DEField("Answer", "Text", 50),
        dex.DEField("AnsweredOn", "Date"),
    )
    survey = pd.DataFrame(
        {
            "SubscriberKey": [f"R{i}" for i in range(60)],
            "Score": [i % 11 for i in range(60)],
            "Answer": [None if i % 7 == 0 else f"answer {i}" for i in range(60)],
            "AnsweredOn": [datetime(2026, 10, 1) + timedelta(days=i) for i in range(60)],
        }
    )
    source = segment(client, key, fields)
    dex.upsert_rows(client, source, survey.to_dict("records"))
    target = segment(client, key + "_detractors", fields)
    f = client.simple_filter
    detractors = client.all_of(
        f("Score", "lessThanOrEqual", 6),
        f("Answer", "isNotNull"),
        client.any_of(
            f("AnsweredOn", "between", datetime(2026, 10, 10), datetime(2026, 11, 10)),
            f("Score", "equals", 0),
        ),
    )
    act.run_filter(client, act.FilterSpec(f"{target}_f", source, target, detractors))
    in_window = survey.AnsweredOn.between(datetime(2026, 10, 10), datetime(2026, 11, 10))
    expected = survey[(survey.Score <= 6) & survey.Answer.notna() & (in_window | (survey.Score == 0))]
    assert keys_of(client, target) == sorted(expected.SubscriberKey)


def test_extracts_land_in_export_and_match_retrieve(
    client: MceClient, sftp: SSHFileSystem, tmp_path: Path, sent: tuple[str, int, datetime]
) -> None:
    source, _, sent_at = sent
    start, end = sent_at - timedelta(days=1), sent_at + timedelta(days=3)
    act.extract_data_extension(client, source, f"{source}.csv")
    act.extract_tracking(client, start, end, f"{source}_tracking.zip")
    moved = act.start_file_transfer(client, "NTO_Safehouse_To_Export")
    assert f"{source}.csv" in moved.message and f"{source}_tracking.zip" in moved.message
    de_file = act.download_export(sftp, f"{source}.csv", tmp_path)
    with open(de_file.path, newline="", encoding="utf-8") as handle:
        extracted = list(csv.DictReader(handle))
    assert {r["SubscriberKey"]: r for r in extracted} == all_rows(
        client, source, ["SubscriberKey", "Email", "State"]
    )

    archive = act.download_export(sftp, f"{source}_tracking.zip", tmp_path)
    from_extract = trk.read_tracking_extract(Path(archive.path))
    from_api = events_frame(client, start, end)
    key = ["send_id", "subscriber_key", "event_type", "event_date", "url"]

    def normal(frame: pd.DataFrame) -> list[tuple]:
        frame = frame.astype({"send_id": "int64"}).assign(event_date=pd.to_datetime(frame.event_date))
        return sorted(frame[key].fillna("").itertuples(index=False, name=None))

    assert len(from_extract) > 400
    assert normal(from_extract) == normal(from_api)

    # The warehouse merge reads the extract's CSVs with DuckDB: the same table as from the API frame.
    from_files, from_frame = duckdb.connect(), duckdb.connect()
    merged = merge_event_files(from_files, extract_files(Path(archive.path), tmp_path / "events"), "p")
    merge_events(from_frame, from_api, "p")
    everything = "SELECT * EXCLUDE (_partition) FROM tracking_events ORDER BY ALL"
    assert from_files.execute(everything).fetchall() == from_frame.execute(everything).fetchall()
    assert merged.read == merged.new == len(from_extract)
    with pytest.raises(Exception, match="not in /Export"):
        act.download_export(sftp, "never_extracted.zip", tmp_path)


def test_query_dates_read_the_mce_server_clock(client: MceClient, audience: tuple[str, pd.DataFrame]) -> None:
    """GETDATE() and CURRENT_TIMESTAMP are MCE's server time (CST, no daylight saving), GETUTCDATE()
    UTC: a window like `EventDate >= DATEADD(day, -30, GETDATE())` is compared in the data views' time."""
    source, _ = audience
    fields = (
        dex.DEField("SubscriberKey", "Text", 20, is_primary_key=True),
        dex.DEField("ServerTime", "Date"),
        dex.DEField("StandardTime", "Date"),
        dex.DEField("UtcTime", "Date"),
    )
    target = segment(client, source + "_now", fields)
    with advance(timedelta(days=3)):  # the local MCE's clock, which its data views read too
        before = mce_now()
        act.run_query(
            client,
            act.QuerySpec(
                f"{target}_q",
                f"SELECT TOP 1 SubscriberKey, GETDATE() AS ServerTime, CURRENT_TIMESTAMP AS StandardTime, "
                f"GETUTCDATE() AS UtcTime FROM [{source}] ORDER BY SubscriberKey",
                target,
                target,
            ),
        )
        after = mce_now()
    [row] = all_rows(client, target, [f.name for f in fields]).values()
    server, standard, utc = (pd.Timestamp(row[c]) for c in ("ServerTime", "StandardTime", "UtcTime"))
    assert before <= server <= after and before <= standard <= after
    assert utc - server == timedelta(hours=6)


def test_the_tracking_extract_names_each_send(
    client: MceClient,
    local_mce: LocalMce,
    sftp: SSHFileSystem,
    tmp_path: Path,
    audience: tuple[str, pd.DataFrame],
) -> None:
    """SendJobs.csv: one row per send in the window, with its email name, subject, send
    definition and time; merged into send_jobs once, however often it is read."""
    source, _ = audience
    by_definition = act.start_send(client, f"{source}_def", source, "Trail news")
    by_definition_id = int(by_definition.task_id or 0)
    direct_at = mce_now().replace(microsecond=0) - timedelta(hours=2)
    direct_id, _ = local_mce.send(
        source, sent_at=direct_at, seed=4, subject="Tent sale", name="Tent sale email"
    )
    act.extract_tracking(
        client, mce_now() - timedelta(days=1), mce_now() + timedelta(minutes=1), f"{source}_jobs.zip"
    )
    act.start_file_transfer(client, "NTO_Safehouse_To_Export")
    archive = Path(act.download_export(sftp, f"{source}_jobs.zip", tmp_path).path)
    jobs = send_jobs_file(archive, tmp_path / "jobs")
    assert jobs is not None
    assert all(f.path.name != "SendJobs.csv" for f in extract_files(archive, tmp_path / "events"))

    con = duckdb.connect()
    ours = (
        "SELECT send_id, email_name, subject, send_definition_key, sent_time FROM send_jobs "
        f"WHERE send_id IN ({by_definition_id}, {direct_id}) ORDER BY send_id"
    )
    merged = merge_send_jobs(con, jobs, "p")
    assert merge_send_jobs(con, jobs, "p") == merged >= 2  # other tests' sends share the window
    rows = con.execute(ours).fetchall()
    assert [r[:4] for r in rows] == sorted(
        [
            (by_definition_id, f"{source}_def", "Trail news", f"{source}_def"),
            (direct_id, "Tent sale email", "Tent sale", None),
        ]
    )
    assert dict((r[0], r[4]) for r in rows)[direct_id] == direct_at
    assert con.execute("SELECT count(*) - count(DISTINCT send_id) FROM send_jobs").fetchall() == [(0,)]

    bad = jobs.path.read_text(encoding="utf-8").splitlines()
    bad[1] = bad[1].replace(bad[1].split(",")[1], "not-a-number", 1)
    jobs.path.write_text("\r\n".join(bad) + "\r\n", encoding="utf-8")
    with pytest.raises(EventFileError, match=r"row 1: send_id"):
        merge_send_jobs(con, jobs, "q")
    assert con.execute("SELECT count(*) FROM send_jobs WHERE _partition = 'q'").fetchall() == [(0,)]


def test_a_query_finds_a_sends_recipients_by_its_email_name(
    client: MceClient, local_mce: LocalMce, audience: tuple[str, pd.DataFrame]
) -> None:
    """The _Job data view: the usual way to pick one email's sends out of _Sent, _Open, ..."""
    source, rows = audience
    name = f"{source} spring sale"
    send_id, _ = local_mce.send(
        source, sent_at=mce_now() - timedelta(hours=3), seed=8, subject="Spring sale", name=name
    )
    local_mce.send(source, sent_at=mce_now() - timedelta(hours=2), seed=9, name=f"{source} other email")
    fields = (
        dex.DEField("SubscriberKey", "Text", 20, is_primary_key=True),
        dex.DEField("Subject", "Text", 50),
        dex.DEField("JobID", "Number"),
    )
    target = segment(client, source + "_job", fields)
    act.run_query(
        client,
        act.QuerySpec(
            f"{target}_q",
            "SELECT s.SubscriberKey, j.EmailSubject AS Subject, j.JobID FROM _Sent s "
            f"INNER JOIN _Job j ON s.JobID = j.JobID WHERE j.EmailName = '{name}'",
            target,
            target,
        ),
    )
    got = all_rows(client, target, [f.name for f in fields])
    assert sorted(got) == sorted(rows.SubscriberKey)  # every recipient, once: the other send is not joined
    assert {(r["Subject"], r["JobID"]) for r in got.values()} == {("Spring sale", str(send_id))}

    by_definition = act.start_send(client, f"{source}_def", source, "Trail news")
    with advance(timedelta(minutes=15)):  # a send takes up to ten minutes to reach everyone
        act.run_query(
            client,
            act.QuerySpec(
                f"{target}_q",
                "SELECT s.SubscriberKey, j.EmailSubject AS Subject, j.JobID FROM _Sent s "
                f"INNER JOIN _Job j ON s.JobID = j.JobID WHERE j.EmailSendDefinition = '{source}_def'",
                target,
                target,
            ),
        )
    got = all_rows(client, target, [f.name for f in fields])
    assert {(r["Subject"], r["JobID"]) for r in got.values()} == {("Trail news", by_definition.task_id)}
    assert len(got) == len(rows)


# The columns MCE documents for its system data views (shared/mce/FACTS.md, section 7; _Job from
# the Job data view's published columns a marketer's query uses).
_IDENTITY = "AccountID OYBAccountID JobID ListID BatchID SubscriberID SubscriberKey EventDate Domain"
DOCUMENTED_COLUMNS = {
    "_Sent": f"{_IDENTITY} TriggererSendDefinitionObjectID TriggeredSendCustomerKey",
    "_Open": f"{_IDENTITY} IsUnique",
    "_Click": f"{_IDENTITY} URL LinkName LinkContent IsUnique TriggererSendDefinitionObjectID",
    "_Bounce": f"{_IDENTITY} IsUnique BounceCategoryID BounceCategory BounceSubcategoryID BounceSubcategory "
    "BounceTypeID BounceType SMTPBounceReason",
    "_Unsubscribe": f"{_IDENTITY} IsUnique",
    "_Subscribers": "SubscriberID DateUndeliverable DateJoined DateUnsubscribed Domain EmailAddress BounceCount "
    "SubscriberKey SubscriberType Status",
    "_Job": "JobID EmailName EmailSubject EmailSendDefinition SchedTime DeliveredTime TriggeredSendCustomerKey",
}


@pytest.mark.parametrize("view", sorted(DOCUMENTED_COLUMNS))
def test_a_query_may_use_every_documented_column_of_a_data_view(
    client: MceClient, key: str, view: str
) -> None:
    target = segment(client, key, (dex.DEField("SubscriberKey", "Text", 20, is_primary_key=True),))
    uses = " AND ".join(f"({c} IS NULL OR {c} IS NOT NULL)" for c in DOCUMENTED_COLUMNS[view].split())
    result = act.run_query(
        client,
        act.QuerySpec(
            f"{target}_q", f"SELECT TOP 1 'one' AS SubscriberKey FROM {view} WHERE {uses}", target, target
        ),
    )
    assert result.message in (
        f"0 rows written to {target} (Overwrite)",
        f"1 rows written to {target} (Overwrite)",
    )


def test_subscribers_bounce_count_and_undeliverable_date_follow_the_bounces(
    client: MceClient, sent: tuple[str, int, datetime]
) -> None:
    fields = (
        dex.DEField("SubscriberKey", "Text", 20, is_primary_key=True),
        dex.DEField("BounceCount", "Number"),
        dex.DEField("DateUndeliverable", "Date"),
    )
    target = segment(client, sent[0] + "_bounces", fields)
    # Two hours on, every bounce of every send made so far is visible: none turns up between the
    # query and the Retrieve that checks it.
    with advance(timedelta(hours=2)):
        act.run_query(
            client,
            act.QuerySpec(
                f"{target}_q",
                "SELECT SubscriberKey, BounceCount, DateUndeliverable FROM _Subscribers WHERE BounceCount > 0",
                target,
                target,
            ),
        )
        bounces = pd.concat(trk.retrieve_events(client, "BounceEvent", datetime(2000, 1, 1), mce_now()))
    hard = bounces[bounces.bounce_category == "Hard bounce"].groupby("subscriber_key").event_date.max()
    expected = {
        k: (str(n), pd.Timestamp(hard[k]) if k in hard.index else None)
        for k, n in bounces.groupby("subscriber_key").size().items()
    }
    got = {
        k: (r["BounceCount"], pd.Timestamp(r["DateUndeliverable"]) if r["DateUndeliverable"] else None)
        for k, r in all_rows(client, target, [f.name for f in fields]).items()
    }
    assert got == expected and len(expected) > 0
