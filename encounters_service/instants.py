"""The one grammar and range of input datetimes, for request bodies (models) and query values
(query_params) alike. msgspec's RFC 3339 parser reads both, so they accept and refuse the same text:

    YYYY-MM-DD ("T" | "t" | " ") hh:mm:ss [ "." 1*digit ] ( "Z" | "z" | ("+" | "-") hh [":"] mm )

ASCII digits; a real calendar date; hours 00–23, seconds 00–59 (no leap second); a fraction of
any length, rounded to the microsecond; an offset is required, up to ±23:59. The instant, in UTC,
must lie within RANGE, the range the answers' own form (YYYY-…mmmZ) can show.

Instants are passed on in UTC, so PostgreSQL never meets an offset beyond its own ±15:59.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

LATEST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
RANGE = "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"
EXAMPLE = "e.g. 2018-01-01T00:00:00.000Z or 2018-01-01T01:00:00+01:00"
DATETIME_RULES = f"{RANGE} in UTC, {EXAMPLE}"  # for the OpenAPI document
AwareDatetime = Annotated[
    datetime, msgspec.Meta(tz=True, description=f"RFC 3339 datetime with an offset, {DATETIME_RULES}")
]
_DECODER = msgspec.json.Decoder(AwareDatetime)


def in_utc(name: str, value: datetime) -> datetime:
    """`value` (aware) in UTC; a ValueError naming `name` if that instant is out of range."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # before year 1 or after 9999 in UTC
        utc = None
    if utc is None or utc > LATEST:
        raise ValueError(f"{name} must be {RANGE} in UTC (got {value.isoformat()})")
    return utc


def parse(name: str, text: str) -> datetime:
    """The instant `text` names, in UTC, or a ValueError naming `name`."""
    try:
        # A JSON string decoded as a body's field is: the same parser (a third of msgspec.convert's cost).
        value = _DECODER.decode(msgspec.json.encode(text))
    except msgspec.ValidationError:
        raise ValueError(f"{name} must be an RFC 3339 datetime with an offset, {EXAMPLE} (got {text!r})") from None
    return in_utc(name, value)
