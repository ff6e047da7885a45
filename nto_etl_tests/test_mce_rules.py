"""MCE's value rules as SQL: the date parse tries its formats in the order that costs least,
and finds what trying them in the published order finds."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from nto_etl.mce.rules import DATE_FORMATS, date_parse_sql

MOMENTS = [
    datetime(2026, 1, 2, 3, 4, 5, 678000),
    datetime(2026, 12, 31, 15, 59, 0),
    datetime(2026, 7, 9, 0, 0, 0),
]
TEXTS = [m.strftime(f) for m in MOMENTS for f in DATE_FORMATS] + [
    "1/2/2026 3:04:05 pm",  # lower case, no padding
    "01/02/2026 03:04:05 PM ",  # a space after the M
    " 2026-01-02",
    "01/02/2026 15:04:05 PM",  # 24-hour time with PM: no format
    "01/02/2026 3:04 PM",
    "2026-13-01",
    "March 1, 2026",
    "mm/dd/yyyy",
    "",
    None,
]


@pytest.mark.parametrize("text", TEXTS)
def test_the_date_parse_finds_what_every_format_in_order_finds(text: str | None) -> None:
    in_order = ", ".join(f"'{f}'" for f in DATE_FORMATS)
    with duckdb.connect() as con:
        fast, reference = con.execute(
            f"SELECT {date_parse_sql('$text')}, try_strptime($text, [{in_order}])", {"text": text}
        ).fetchone()  # type: ignore[misc]
    assert fast == reference


def test_every_format_is_parsed() -> None:
    with duckdb.connect() as con:
        for moment in MOMENTS:
            for fmt in DATE_FORMATS:
                text = moment.strftime(fmt)
                [(parsed,)] = con.execute(f"SELECT {date_parse_sql('$t')}", {"t": text}).fetchall()
                assert parsed == datetime.strptime(text, fmt), (fmt, text)
