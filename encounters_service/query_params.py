"""Strict parsing of the query-string values that Litestar cannot type for us: instants and dates.

Instants are ISO 8601 with an offset (`2018-01-01T00:00:00Z`, `…T01:00:00.123+01:00`). A `+` that
reached us as a space (an unencoded `+` in a query string) is read back as `+`.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone

from litestar.exceptions import ValidationException

# Sentinels of the query files' `open_as_of timestamptz` parameter (psql variables cannot be null).
OPEN_NOW = "infinity"  # open as of infinity: not discharged at all
OPEN_OR_DISCHARGED = "-infinity"  # open as of -infinity: every encounter that is not deleted

_UNENCODED_PLUS = re.compile(r"(T[\d:.,]+) (\d{2}(?::?\d{2})?)$")


def instant(name: str, text: str) -> datetime:
    """An ISO 8601 datetime with an offset; anything else is a 400 naming the parameter."""
    try:
        value = datetime.fromisoformat(_UNENCODED_PLUS.sub(r"\1+\2", text.strip()))
    except ValueError:
        raise ValidationException(
            f"{name} must be an ISO 8601 datetime with an offset, e.g. 2018-01-01T00:00:00.000Z (got {text!r})"
        ) from None
    if value.tzinfo is None:
        raise ValidationException(f"{name} must include an offset, e.g. Z or +01:00 (got {text!r})")
    return value


def instant_or_date(name: str, text: str) -> datetime:
    """An instant as in `instant`, or a plain date meaning midnight UTC of that day."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        return instant(name, text)
    return datetime.combine(day, time(), tzinfo=timezone.utc)
