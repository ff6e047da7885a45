"""MCE's own value rules for data-extension fields, in one place.

The local MCE enforces them and the data contracts check them before upload, so a
row that MCE would refuse is refused here first, with the same reason.
"""

from __future__ import annotations

# Email syntax MCE accepts: a dot-atom local part, a dotted domain, no spaces, at most 254 characters.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
PHONE_PATTERN = r"^\+?[0-9][0-9 ().-]{5,48}[0-9]$"
LOCALE_PATTERN = r"^[A-Za-z]{2}(-[A-Za-z]{2})?$"
BOOLEAN_TRUE = ("true", "1", "yes", "y")
BOOLEAN_FALSE = ("false", "0", "no", "n")

NUMBER_MIN = -2_147_483_648
NUMBER_MAX = 2_147_483_647
TEXT_MAX_LENGTH = 4000
DEFAULT_MAX_LENGTH = {"Text": 50, "EmailAddress": 254, "Phone": 50, "Locale": 5}
DECIMAL_MAX_PRECISION = 38

# Date texts MCE accepts in imports and SOAP values (en-US). No text fits two of them (only
# the first ends in AM or PM), so the order they are tried in changes no result.
DATE_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d",
)


def date_parse_sql(text: str) -> str:
    """DuckDB SQL of the date in the SQL text expression `text` (NULL when it fits none of
    DATE_FORMATS). A format that fails costs DuckDB's try_strptime about eight times a parse,
    so a text holding an M (AM, PM) tries the 12-hour form first and any other the 24-hour one."""

    def attempt(formats: tuple[str, ...]) -> str:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in formats)
        return f"try_strptime({text}, [{listed}])"

    twelve_hour, *others = DATE_FORMATS
    return (
        f"CASE WHEN contains(upper({text}), 'M') THEN {attempt(DATE_FORMATS)} "
        f"ELSE {attempt((*others, twelve_hour))} END"
    )


# How MCE renders a Date in Retrieve results and extracts.
RENDER_DATE_FORMAT = "%-m/%-d/%Y %-I:%M:%S %p"
