"""A seeded synthetic CRM: daily export files and the matching web-analytics feed, at any size.

    nto-etl generate --rows 100000 --seed 7 --out data/generated --start-date 2026-11-01 --days 3

Every attribute of a contact is a pure function of (seed, contact id, salt), computed
with a vectorised splitmix64 hash, so any day can be written without holding the
CRM in memory and the same seed and flags give byte-identical files. A small share of
rows is bad the way real exports are bad (invalid emails, overlong names, impossible
dates, missing emails, repeated keys), so staging has something to reject.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from nto_etl.contracts import MODELS, de_fields

CHUNK = 250_000
BAD_ROW_PER_MILLE = 5
FIRST_NAMES = np.array(
    [
        "Ana",
        "Ben",
        "Chloé",
        "Dev",
        "Emma",
        "Farah",
        "Gus",
        "Hana",
        "Ivan",
        "Jules",
        "Kai",
        "Lena",
        "Mateo",
        "Nora",
        "Omar",
        "Priya",
        "Quinn",
        "Rosa",
        "Sam",
        "Théo",
        "Zoë",
        "Søren",
        "José",
        "Łukasz",
        "Mei",
        "Aiyana",
        "Björn",
        "Carmen",
        "Dmitri",
        "Eun-ji",
        "Fatima",
        "Grace",
        "Hiro",
        "Inés",
        "Jamal",
        "Keanu",
    ]
)
LAST_NAMES = np.array(
    [
        "Lee",
        "Garcia",
        "Smith",
        "Nguyen",
        "Müller",
        "O'Brien",
        "Kowalski",
        "Johnson",
        "Brown",
        "Rossi",
        "Silva",
        "Kim",
        "Patel",
        "Dubois",
        "Andersen",
        "Hernández",
        "Walker",
        "Young",
        "Martin",
        "Novak",
        "Yamamoto",
    ]
)
PLACES = np.array(
    [
        ("Portland", "OR", "97201"),
        ("Seattle", "WA", "98101"),
        ("San Francisco", "CA", "94103"),
        ("Denver", "CO", "80202"),
        ("Boston", "MA", "02108"),
        ("Newark", "NJ", "07102"),
        ("Austin", "TX", "78701"),
        ("Bozeman", "MT", "59715"),
        ("Boise", "ID", "83702"),
        ("Burlington", "VT", "05401"),
        ("Anchorage", "AK", "99501"),
        ("Salt Lake City", "UT", "84101"),
    ]
)
STREETS = np.array(["Main St", "Oak Ave", "Pine Rd", "Cedar Ln", "Summit Dr", "Trailhead Way", "River Rd"])
DOMAINS = np.array(["example.com", "example.org", "mail.example.net", "outdoors.example"])
LOCALES = np.array(["en-US", "en-US", "en-US", "es-US", "fr-CA", "en-CA"])
STORES = np.array(["Portland Pearl", "Seattle Downtown", "Denver Union", "Boston Back Bay", "Austin South"])
SOURCES = np.array(["web", "store", "call_center", "event"])
EVENTS = [
    ("EV0001", "Trail running clinic"),
    ("EV0002", "Winter camping 101"),
    ("EV0003", "Climbing gear swap"),
    ("EV0004", "Kayak safety night"),
    ("EV0005", "Backcountry first aid"),
    ("EV0006", "Map and compass walk"),
]
PAGES = np.array(
    [
        ("/", "Northern Trail Outfitters"),
        ("/tents", "Tents"),
        ("/jackets", "Jackets"),
        ("/boots", "Boots"),
        ("/sale", "Sale"),
        ("/events", "Events"),
        ("/stores", "Find a store"),
        ("/account", "My account"),
    ]
)
REFERRERS = np.array(["", "https://www.search.example/", "https://social.example/", "https://news.example/"])
CAMPAIGNS = np.array(["", "", "newsletter_2026_11", "welcome_series", "event_reminder"])


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit hash of each element."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class Plan:
    """Who exists on which day: `base` contacts before the first day, `per_day` new ones each day."""

    rows: int
    seed: int
    start: date
    days: int

    @property
    def per_day(self) -> int:
        return max(1, self.rows // 100) if self.rows >= 100 else 1

    @property
    def base(self) -> int:
        return max(0, self.rows - self.per_day * self.days)

    def new_ids(self, day: int) -> np.ndarray:
        first = self.base + day * self.per_day
        return np.arange(first, min(first + self.per_day, self.rows), dtype=np.int64)

    def existing(self, day: int) -> int:
        return min(self.rows, self.base + day * self.per_day)

    def rand(self, ids: np.ndarray, salt: int) -> np.ndarray:
        with np.errstate(over="ignore"):
            key = ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            return _mix(key ^ _mix(np.full(len(ids), self.seed * 1_000_003 + salt, dtype=np.uint64)))

    def pick(self, ids: np.ndarray, salt: int, table: np.ndarray) -> np.ndarray:
        return table[(self.rand(ids, salt) % np.uint64(len(table))).astype(np.int64)]

    def share(self, ids: np.ndarray, salt: int, per_mille: int) -> np.ndarray:
        return (self.rand(ids, salt) % np.uint64(1000)) < np.uint64(per_mille)

    def day_date(self, day: int) -> date:
        return self.start + timedelta(days=day)


def _timestamps(plan: Plan, ids: np.ndarray, salt: int, day: date, *, spread_days: int = 0) -> pd.Series:
    seconds = (plan.rand(ids, salt) % np.uint64(86_400 * (spread_days + 1))).astype("int64")
    base = pd.Timestamp(datetime.combine(day, datetime.min.time())) - pd.Timedelta(days=spread_days)
    return pd.Series(base + pd.to_timedelta(seconds, unit="s")).dt.strftime("%Y-%m-%d %H:%M:%S")


def _cat(*parts: object) -> pd.Series:
    """Element-wise concatenation of strings, arrays and series (scalars broadcast)."""
    n = next(len(p) for p in parts if not isinstance(p, str))  # type: ignore[arg-type]
    out = np.full(n, "", dtype=object)
    for p in parts:
        out = out + (p if isinstance(p, str) else np.asarray(p).astype(str).astype(object))
    return pd.Series(out, dtype="str")


def _created_day(plan: Plan, ids: np.ndarray) -> list[date]:
    """New contacts were created on their day; the CRM's existing ones over the two years before."""
    before = (plan.rand(ids, 12) % np.uint64(730)).astype(np.int64) + 1
    return [
        plan.day_date(int((i - plan.base) // plan.per_day))
        if i >= plan.base
        else plan.start - timedelta(days=int(b))
        for i, b in zip(ids, before, strict=True)
    ]


def contact_rows(plan: Plan, ids: np.ndarray, version: int, day: date) -> pd.DataFrame:
    """Contacts `ids` as the CRM exports them on `day`; `version` > 0 means their details changed."""
    n = len(ids)
    first = plan.pick(ids, 1, FIRST_NAMES)
    last = plan.pick(ids, 2, LAST_NAMES)
    place = PLACES[(plan.rand(ids, 3 + version * 101) % np.uint64(len(PLACES))).astype(np.int64)]
    customer = _cat("C", pd.Series(ids).map("{:09d}".format))
    local = (
        pd.Series(first).str.normalize("NFKD").str.encode("ascii", "ignore").str.decode("ascii").str.lower()
        + "."
        + pd.Series(last)
        .str.replace("'", "")
        .str.normalize("NFKD")
        .str.encode("ascii", "ignore")
        .str.decode("ascii")
        .str.lower()
    )
    email = _cat(
        local,
        pd.Series(ids % 1000).map("{:03d}".format),
        np.where(version > 0, f"v{version}", ""),
        "@",
        plan.pick(ids, 4, DOMAINS),
    )
    number = (plan.rand(ids, 5 + version) % np.uint64(9000) + np.uint64(1000)).astype(np.int64)
    street_kind = (plan.rand(ids, 6 + version) % np.uint64(100)).astype(np.int64)
    street = _cat(number, " ", plan.pick(ids, 7 + version, STREETS))
    street = street.where(street_kind >= 10, street + ", Apt " + pd.Series(number % 40).astype(str))
    street = street.where(street_kind != 0, street + "\nBuilding B")
    phone = np.where(
        plan.share(ids, 8, 100),
        _cat("0", pd.Series(number).astype(str), " 555 0199"),
        _cat("+1 503-555-", pd.Series(number).map("{:04d}".format)),
    )
    created = pd.Series([d.isoformat() for d in _created_day(plan, ids)])
    created = created + " " + _timestamps(plan, ids, 9, plan.start).str.slice(11)
    modified = created if version == 0 else _timestamps(plan, ids, 10 + version, day)
    return pd.DataFrame(
        {
            "customer_id": customer,
            "subscriber_key": "NTO-" + customer,
            "email": email,
            "first_name": first,
            "last_name": last,
            "phone": phone,
            "street": street,
            "city": place[:, 0],
            "state": place[:, 1],
            "postal_code": place[:, 2],
            "country": np.where(place[:, 1] == "BC", "CA", "US"),
            "locale": plan.pick(ids, 11, LOCALES),
            "created_at": created,
            "modified_at": modified,
        }
    ).iloc[:n]


def spoil(
    plan: Plan,
    frame: pd.DataFrame,
    salt: int,
    *,
    key: str,
    corruptions: dict[str, Callable[[pd.Series], pd.Series]],
) -> pd.DataFrame:
    """Make a small, seeded share of rows bad, and repeat a few keys with an older modified time."""
    if frame.empty:
        return frame
    ids = np.arange(len(frame), dtype=np.int64)
    bad = plan.share(ids, salt, BAD_ROW_PER_MILLE)
    kinds = (plan.rand(ids, salt + 1) % np.uint64(len(corruptions) + 1)).astype(np.int64)
    frame = frame.copy()
    for i, (column, corrupt) in enumerate(corruptions.items()):
        hit = bad & (kinds == i)
        if hit.any():
            frame.loc[hit, column] = corrupt(frame.loc[hit, column]).to_numpy()
    repeat = bad & (kinds == len(corruptions))
    if repeat.any() and "modified_at" in frame:
        older = frame[repeat].copy()
        older["modified_at"] = "2020-01-01 00:00:00"
        frame = pd.concat([frame, older]).sort_values(key, kind="stable")
    return frame.reset_index(drop=True)


CRM_CORRUPTIONS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "email": lambda s: s.str.replace("@", " at ", regex=False),
    "first_name": lambda s: s + "-" + "x" * 60,
    "created_at": lambda s: s.str.replace(r"-\d\d ", "-31 ", regex=True).str.replace("-02-31", "-02-30"),
    "subscriber_key": lambda s: s.where(s.isna(), None),
}


def _contacts(plan: Plan, day: int) -> Iterator[pd.DataFrame]:
    today = plan.day_date(day)
    if day == 0:
        for start in range(0, plan.existing(0), CHUNK):
            ids = np.arange(start, min(start + CHUNK, plan.existing(0)), dtype=np.int64)
            yield contact_rows(plan, ids, 0, today)
    existing = np.arange(plan.existing(day), dtype=np.int64)
    changed = existing[plan.share(existing, 1000 + day, 20)] if day else existing[:0]
    if len(changed):
        yield contact_rows(plan, changed, day, today)
    yield contact_rows(plan, plan.new_ids(day), 0, today)


def _new_customers(plan: Plan, day: int) -> Iterator[pd.DataFrame]:
    ids = plan.new_ids(day)
    c = contact_rows(plan, ids, 0, plan.day_date(day))
    total = ((plan.rand(ids, 40) % np.uint64(40000)).astype(np.int64) + 1500) / 100
    yield pd.DataFrame(
        {
            "subscriber_key": c["subscriber_key"],
            "email": c["email"],
            "first_name": c["first_name"],
            "locale": c["locale"],
            "home_store": plan.pick(ids, 41, STORES),
            "first_order_total": pd.Series(total).map("{:.2f}".format),
            "created_at": c["created_at"],
            "modified_at": c["created_at"],
        }
    )


def _subscriptions(plan: Plan, day: int) -> Iterator[pd.DataFrame]:
    today = plan.day_date(day)
    if day == 0:
        chunks = [
            np.arange(s, min(s + CHUNK, plan.existing(0)), dtype=np.int64)
            for s in range(0, plan.existing(0), CHUNK)
        ]
    else:
        existing = np.arange(plan.existing(day - 1), dtype=np.int64)
        chunks = [existing[plan.share(existing, 2000 + day, 5)]]
    chunks.append(plan.new_ids(day))
    for ids in chunks:
        if not len(ids):
            continue
        c = contact_rows(plan, ids, 0, today)
        flip = plan.share(ids, 2000 + day, 5) if day else np.zeros(len(ids), dtype=bool)
        opted = plan.share(ids, 50, 600) ^ flip
        when = _timestamps(plan, ids, 51 + day, today) if day else c["created_at"]
        yield pd.DataFrame(
            {
                "subscriber_key": c["subscriber_key"],
                "email": c["email"],
                "opted_in": np.where(opted, "true", "false"),
                "opt_in_date": when,
                "source": plan.pick(ids, 52, SOURCES),
                "modified_at": when,
            }
        )


def _registrations(plan: Plan, day: int) -> Iterator[pd.DataFrame]:
    today = plan.day_date(day)
    count = max(3, plan.rows // 100)
    slots = np.arange(count, dtype=np.int64) + day * 10_000_000
    who = (plan.rand(slots, 60) % np.uint64(max(1, plan.existing(day)))).astype(np.int64)
    c = contact_rows(plan, who, 0, today)
    event = (plan.rand(slots, 61) % np.uint64(len(EVENTS))).astype(np.int64)
    event_day = [plan.start + timedelta(days=7 + 5 * int(e)) for e in event]
    registered = _timestamps(plan, slots, 62, today)
    yield pd.DataFrame(
        {
            "registration_id": _cat("R", pd.Series(slots).map("{:010d}".format)),
            "event_id": [EVENTS[e][0] for e in event],
            "event_name": [EVENTS[e][1] for e in event],
            "event_date": [f"{d.isoformat()} 18:00:00" for d in event_day],
            "event_location": plan.pick(slots, 63, STORES),
            "subscriber_key": c["subscriber_key"],
            "email": c["email"],
            "seats": ((plan.rand(slots, 64) % np.uint64(4)) + np.uint64(1)).astype(np.int64),
            "registered_at": registered,
            "modified_at": registered,
        }
    )


def _page_views(plan: Plan, day: int) -> Iterator[pd.DataFrame]:
    today = plan.day_date(day)
    total = max(10, plan.rows // 20)
    for start in range(0, total, CHUNK):
        slots = np.arange(start, min(start + CHUNK, total), dtype=np.int64) + day * 100_000_000
        who = (plan.rand(slots, 70) % np.uint64(max(1, plan.existing(day)))).astype(np.int64)
        kind = (plan.rand(slots, 71) % np.uint64(10)).astype(np.int64)
        c = contact_rows(plan, who, 0, today)
        hashed = c["email"].str.lower().map(lambda e: hashlib.sha256(e.encode()).hexdigest())
        page = PAGES[(plan.rand(slots, 72) % np.uint64(len(PAGES))).astype(np.int64)]
        campaign = plan.pick(slots, 73, CAMPAIGNS)
        hexes = pd.Series(plan.rand(slots, 74)).map("{:016x}".format)
        yield pd.DataFrame(
            {
                "page_view_id": "pv-" + hexes,
                "session_id": "s-" + pd.Series(plan.rand(slots // 4, 75)).map("{:016x}".format),
                "customer_id": c["customer_id"].where(kind < 4, None),
                "email_sha256": hashed.where((kind >= 4) & (kind < 6), None),
                "viewed_at": _timestamps(plan, slots, 76, today),
                "page_url": "https://www.nto.example" + pd.Series(page[:, 0]),
                "page_title": page[:, 1],
                "referrer": plan.pick(slots, 77, REFERRERS),
                "utm_source": np.where(campaign != "", "email", ""),
                "utm_medium": np.where(campaign != "", "email", ""),
                "utm_campaign": campaign,
            }
        )


DATASETS: dict[str, tuple[str, Callable[[Plan, int], Iterator[pd.DataFrame]]]] = {
    "contacts": ("crm/contacts", _contacts),
    "new_customers": ("crm/new_customers", _new_customers),
    "newsletter_subscriptions": ("crm/newsletter_subscriptions", _subscriptions),
    "event_registrations": ("crm/event_registrations", _registrations),
    "web_page_views": ("web_analytics/page_views", _page_views),
}
KEYS = {
    "contacts": "subscriber_key",
    "new_customers": "subscriber_key",
    "newsletter_subscriptions": "subscriber_key",
    "event_registrations": "registration_id",
}


def generate(
    rows: int,
    seed: int,
    out: Path,
    start: date,
    days: int,
    *,
    progress: bool = False,
    only: set[str] | None = None,
) -> list[Path]:
    """Write every dataset (or `only` those) for every day; returns the files written."""
    plan = Plan(rows, seed, start, days)
    written = []
    for day in range(days):
        for name, (folder, make) in DATASETS.items():
            if only is not None and name not in only:
                continue
            path = out / folder / f"{Path(folder).name}_{plan.day_date(day).isoformat()}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            columns = [f.name for f in de_fields(MODELS[name])]
            count = 0
            with pa.OSFile(str(path.with_suffix(".part")), "wb") as sink:
                writer = None
                for part, frame in enumerate(make(plan, day)):
                    if name in KEYS:
                        frame = spoil(
                            plan,
                            frame,
                            9000 + day * 97 + part * 13 + len(name),
                            key=KEYS[name],
                            corruptions={k: v for k, v in CRM_CORRUPTIONS.items() if k in frame},
                        )
                    table = pa.Table.from_pandas(frame[columns].astype("string"), preserve_index=False)
                    if writer is None:
                        writer = pacsv.CSVWriter(sink, table.schema)
                    writer.write_table(table)
                    count += len(frame)
                    if progress:
                        print(f"  {path.name}: {count:,} rows", file=sys.stderr, flush=True)
                if writer is not None:
                    writer.close()
            path.with_suffix(".part").replace(path)
            written.append(path)
    return written
