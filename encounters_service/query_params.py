"""Strict parsing of the query-string values that Litestar cannot type for us: instants and dates.

Instants follow the grammar and range of request bodies (instants.py), with one rule of query
strings: a `+` that reached us as a space (an unencoded `+01:00`) is read back as `+`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

from litestar.exceptions import ValidationException

from encounters_service import instants

# Sentinels of the query files' `open_as_of timestamptz` parameter (psql variables cannot be null).
OPEN_NOW = "infinity"  # open as of infinity: not discharged at all
OPEN_OR_DISCHARGED = "-infinity"  # open as of -infinity: every encounter that is not deleted

_UNENCODED_PLUS = re.compile(r"(:[0-9]{2}(?:\.[0-9]+)?) ([0-9]{2}:?[0-9]{2})$")
_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def instant(name: str, text: str) -> datetime:
    """The instant (in UTC) of an RFC 3339 datetime with an offset; anything else is a 400 naming the parameter."""
    if " " in text:
        text = _UNENCODED_PLUS.sub(r"\1+\2", text)
    try:
        return instants.parse(name, text)
    except ValueError as error:
        raise ValidationException(str(error)) from None


def instant_or_date(name: str, text: str) -> datetime:
    """An instant as in `instant`, or a plain date (YYYY-MM-DD) meaning midnight UTC of that day."""
    if not _PLAIN_DATE.fullmatch(text):
        return instant(name, text)
    try:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    except ValueError:
        message = f"{name} must be a date (YYYY-MM-DD) or an instant, {instants.EXAMPLE} (got {text!r})"
        raise ValidationException(message) from None
