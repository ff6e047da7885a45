"""Write the bad-input corpus: CRM and web-analytics files as real exports get them wrong.

Each case is written to nto_etl_tests/corpus/<name> with its expected outcome in
manifest.json: either the file-level error ("error": text the message contains) or the
exact rejects ("rejects": [row, column, check]) and the rows staged. Expectations are
written here by hand, from what each file contains, never read back from the code.

    python scripts/make_bad_input_corpus.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "nto_etl_tests" / "corpus"
CONTACT = (
    "customer_id,subscriber_key,email,first_name,last_name,phone,street,city,state,postal_code,country,locale,"
    "created_at,modified_at"
)
SUBS = "subscriber_key,email,opted_in,opt_in_date,source,modified_at"
EVENTS = (
    "registration_id,event_id,event_name,event_date,event_location,subscriber_key,email,seats,registered_at,"
    "modified_at"
)
CUSTOMERS = "subscriber_key,email,first_name,locale,home_store,first_order_total,created_at,modified_at"
VIEWS = (
    "page_view_id,session_id,customer_id,email_sha256,viewed_at,page_url,page_title,referrer,utm_source,"
    "utm_medium,utm_campaign"
)
SHA = "a" * 64


def contact(i: int, **v: str) -> str:
    row = {
        "customer_id": f"C{i}",
        "subscriber_key": f"K{i}",
        "email": f"c{i}@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "phone": "+1 503-555-0100",
        "street": "1 Main St",
        "city": "Portland",
        "state": "OR",
        "postal_code": "97201",
        "country": "US",
        "locale": "en-US",
        "created_at": "2026-11-01 09:00:00",
        "modified_at": "2026-11-01 09:00:00",
        **v,
    }
    return ",".join(row[c] for c in CONTACT.split(","))


def lines(*rows: str, header: str = CONTACT, newline: str = "\r\n") -> bytes:
    return (newline.join([header, *rows]) + newline).encode("utf-8")


CASES: list[dict[str, Any]] = [
    {"name": "empty.csv", "content": b"", "error": "the file is empty"},
    {"name": "blank_lines_only.csv", "content": b"\r\n\r\n", "error": "no header row"},
    {"name": "header_only.csv", "content": lines(), "staged": 0, "rejects": []},
    {
        "name": "bom_and_crlf.csv",
        "content": b"\xef\xbb\xbf" + lines(contact(1), contact(2)),
        "staged": 2,
        "rejects": [],
    },
    {
        "name": "lf_only.csv",
        "content": lines(contact(1), contact(2), newline="\n"),
        "staged": 2,
        "rejects": [],
    },
    {
        "name": "latin1.csv",
        "content": lines(contact(1, first_name="Ren\u00e9e")).decode().encode("latin-1"),
        "error": "not UTF-8: invalid byte 0xe9",
    },
    {
        "name": "utf16.csv",
        "content": lines(contact(1)).decode().encode("utf-16"),
        "error": "the header is not UTF-8",
    },
    {"name": "binary_garbage.csv", "content": bytes(range(256)) * 4, "error": "the file is not text"},
    {
        "name": "semicolons.csv",
        "content": lines(contact(1).replace(",", ";"), header=CONTACT.replace(",", ";")),
        "error": "looks delimited by semicolons",
    },
    {
        "name": "tabs.csv",
        "content": lines(contact(1).replace(",", "\t"), header=CONTACT.replace(",", "\t")),
        "error": "looks delimited by tabs",
    },
    {
        "name": "missing_column.csv",
        "content": lines(header=CONTACT.replace(",locale", "")),
        "error": "missing columns locale",
    },
    {
        "name": "extra_column.csv",
        "content": lines(header=CONTACT + ",shoe_size"),
        "error": "unknown columns shoe_size",
    },
    {
        "name": "renamed_column.csv",
        "content": lines(header=CONTACT.replace("first_name", "FirstName")),
        "error": "missing columns first_name; unknown columns FirstName",
    },
    {
        "name": "repeated_column.csv",
        "content": lines(header=CONTACT + ",email"),
        "error": "repeated columns email",
    },
    {
        "name": "unterminated_quote.csv",
        "content": lines(contact(1)) + b'C2,K2,"c2@example.com,Bo',
        "error": "may be truncated",
    },
    {
        "name": "quoted_newlines_and_commas.csv",
        "content": lines(contact(1, street='"1 Main St\r\nApt 2"', last_name='"Lee, Jr."'), contact(2)),
        "staged": 2,
        "rejects": [],
    },
    {
        "name": "truncated_last_row.csv",
        "content": lines(contact(1)) + b"C2,K2,c2@example.com,Bo",
        "staged": 1,
        "rejects": [[2, None, "field_count(14)"]],
    },
    {
        "name": "extra_field_in_row.csv",
        "content": lines(contact(1), contact(2) + ",surplus", contact(3)),
        "staged": 2,
        "rejects": [[2, None, "field_count(14)"]],
    },
    {
        "name": "duplicate_keys.csv",
        "content": lines(
            contact(1, modified_at="2026-11-03 00:00:00"), contact(2, subscriber_key="K1"), contact(3)
        ),
        "staged": 2,
        "rejects": [[2, "subscriber_key", "duplicate_key"]],
    },
    {
        "name": "overlong_first_name.csv",
        "content": lines(contact(1, first_name="A" * 51), contact(2)),
        "staged": 1,
        "rejects": [[1, "first_name", "str_length(None, 50)"]],
    },
    {
        "name": "invalid_emails.csv",
        "content": lines(
            contact(1, email="plainaddress"),
            contact(2, email="a b@example.com"),
            contact(3, email="dots..in@example.com"),
            contact(4, email="no-tld@example"),
            contact(5),
        ),
        "staged": 1,
        "rejects": [[r, "email", "mce_syntax(rule=email)"] for r in (1, 2, 3, 4)],
    },
    {
        "name": "invalid_dates.csv",
        "content": lines(
            contact(1, created_at="2026-02-30 10:00:00"), contact(2, modified_at="yesterday"), contact(3)
        ),
        "staged": 1,
        "rejects": [
            [1, "created_at", "coerce_dtype('datetime64[ns]')"],
            [2, "modified_at", "coerce_dtype('datetime64[ns]')"],
        ],
    },
    {
        "name": "invalid_phone.csv",
        "content": lines(contact(1, phone="call me"), contact(2)),
        "staged": 1,
        "rejects": [[1, "phone", "mce_syntax(rule=phone)"]],
    },
    {
        "name": "invalid_locale.csv",
        "content": lines(contact(1, locale="en_US_POSIX")),
        "staged": 0,
        "rejects": [[1, "locale", "mce_syntax(rule=locale)"], [1, "locale", "str_length(None, 5)"]],
    },
    {
        "name": "missing_email.csv",
        "content": lines(contact(1, email=""), contact(2)),
        "staged": 1,
        "rejects": [[1, "email", "not_nullable"]],
    },
    {
        "name": "missing_primary_key.csv",
        "content": lines(contact(1, subscriber_key=""), contact(2)),
        "staged": 1,
        "rejects": [[1, "subscriber_key", "not_nullable"]],
    },
    {
        "name": "bad_country.csv",
        "content": lines(contact(1, country="usa")),
        "staged": 0,
        "rejects": [[1, "country", "str_length(None, 2)"], [1, "country", "str_matches('^[A-Z]{2}$')"]],
    },
    {
        "name": "formula_cells.csv",
        "content": lines(contact(1, first_name="=1+2", last_name='"@SUM(A1)"'), contact(2)),
        "staged": 2,
        "rejects": [],
    },
    {
        "name": "huge_single_line.csv",
        "content": lines(contact(1, street="x" * 1_000_000), contact(2)),
        "staged": 1,
        "rejects": [[1, "street", "str_length(None, 200)"]],
    },
    {
        "name": "subscriptions_bad_boolean.csv",
        "dataset": "newsletter_subscriptions",
        "content": lines(
            "K1,k1@example.com,maybe,2026-11-01,web,2026-11-01",
            "K2,k2@example.com,YES,2026-11-01,web,2026-11-01",
            "K3,k3@example.com,true,2026-11-01,fax,2026-11-01",
            header=SUBS,
        ),
        "staged": 1,
        "rejects": [
            [1, "opted_in", "coerce_dtype('boolean')"],
            [3, "source", "isin(['web', 'store', 'call_center', 'event'])"],
        ],
    },
    {
        "name": "registrations_bad_seats.csv",
        "dataset": "event_registrations",
        "content": lines(
            "R1,E1,Clinic,2026-11-20 18:00:00,Portland,K1,k1@example.com,0,2026-11-01,2026-11-01",
            "R2,E1,Clinic,2026-11-20 18:00:00,Portland,K2,k2@example.com,2.5,2026-11-01,2026-11-01",
            "R3,E1,Clinic,2026-11-20 18:00:00,Portland,K3,k3@example.com,3,2026-11-01,2026-11-01",
            header=EVENTS,
        ),
        "staged": 1,
        "rejects": [[1, "seats", "greater_than_or_equal_to(1)"], [2, "seats", "coerce_dtype('Int64')"]],
    },
    {
        "name": "customers_bad_amounts.csv",
        "dataset": "new_customers",
        "content": lines(
            "K1,k1@example.com,Ann,en-US,Portland,-5.00,2026-11-01,2026-11-01",
            "K2,k2@example.com,Bo,en-US,Portland,123456789.00,2026-11-01,2026-11-01",
            "K3,k3@example.com,Cy,en-US,Portland,12.50,2026-11-01,2026-11-01",
            header=CUSTOMERS,
        ),
        "staged": 1,
        "rejects": [
            [1, "first_order_total", "greater_than_or_equal_to(0)"],
            [2, "first_order_total", "less_than(100000000)"],
        ],
    },
    {
        "name": "page_views_bad_hash_and_missing_time.csv",
        "dataset": "web_page_views",
        "content": lines(
            f"pv1,s1,C1,{SHA},2026-11-01 10:00:00,https://nto.example/,Home,,,,",
            "pv2,s1,,not-a-hash,2026-11-01 10:00:00,https://nto.example/,Home,,,,",
            "pv3,s1,,,,https://nto.example/,Home,,,,",
            header=VIEWS,
        ),
        "staged": 1,
        "rejects": [[2, "email_sha256", "str_matches('^[0-9a-f]{64}$')"], [3, "viewed_at", "not_nullable"]],
    },
    {
        "name": "page_views_overlong_url.csv",
        "dataset": "web_page_views",
        "content": lines(
            f"pv1,s1,C1,,2026-11-01 10:00:00,https://nto.example/{'p' * 900},Home,,,,", header=VIEWS
        ),
        "staged": 0,
        "rejects": [[1, "page_url", "str_length(None, 900)"]],
    },
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = []
    for case in CASES:
        (OUT / case["name"]).write_bytes(case["content"])
        manifest.append(
            {k: v for k, v in case.items() if k != "content"} | {"dataset": case.get("dataset", "contacts")}
        )
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(CASES)} files to {OUT}")


if __name__ == "__main__":
    main()
