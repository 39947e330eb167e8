"""Cursors of the change feed: a place in the feed (the transaction that changed an encounter, and
its uuid) as an opaque string, signed with a key derived from HS_KEY, so that a cursor this
service did not hand out (mistyped, cut short, edited) is refused rather than read from.

A cursor stays valid as long as HS_KEY does: after the key changes, consumers start again from
the beginning (no cursor).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from uuid import UUID

_PURPOSE = b"encounters-service change feed cursor, v1"  # keeps these signatures apart from tokens'
_MAC_BYTES = 16
_PLACE = re.compile(r"([0-9]{1,20})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


class BadCursor(ValueError):
    """A cursor that this service (with this HS_KEY) did not hand out."""


@dataclass(frozen=True)
class Place:
    """Where the feed was read up to: sql/queries/encounters/changes.sql's after_transaction, after_uuid."""

    transaction: str  # an xid8, as digits
    uuid: UUID


START = Place("0", UUID(int=0))  # before every change


def _mac(key: str, payload: bytes) -> bytes:
    derived = hmac.new(key.encode(), _PURPOSE, hashlib.sha256).digest()
    return hmac.new(derived, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def encode(key: str, place: Place) -> str:
    payload = f"{place.transaction}.{place.uuid}".encode()
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode()


def decode(key: str, cursor: str) -> Place:
    """The place a cursor names; BadCursor unless this service handed it out, exactly as given."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    place = _PLACE.fullmatch(raw[:-_MAC_BYTES].decode("ascii", errors="replace"))
    found = Place(place.group(1), UUID(place.group(2))) if place else None
    # Signed, and spelt as encode() spells it (base64 decoding skips characters it does not know).
    if found is None or not hmac.compare_digest(encode(key, found).encode(), cursor.encode()):
        raise BadCursor("cursor: not a cursor of this feed (start again without one)")
    return found
