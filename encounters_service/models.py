"""Request bodies: msgspec Structs, decoded strictly, and their re-encoding for SQL functions.

Litestar converts `data:` bodies leniently ("1" becomes 1, "true" becomes True), so write handlers
take the raw body and decode it here with msgspec's strict JSON decoder. Optional fields default
to UNSET, which msgspec leaves out when encoding: the SQL functions then see "absent" and
"null" as different things (a PATCH changes only the fields it names).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar
from uuid import UUID

import msgspec
from litestar.exceptions import ValidationException
from msgspec import UNSET, UnsetType

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Spo2Scale = Annotated[int, msgspec.Meta(ge=1, le=2)]
Text = Annotated[str, msgspec.Meta(pattern=r"^[^\x00]*$")]  # PostgreSQL text cannot hold NUL


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """A request body: unknown fields are refused."""


class LocationVisit(Body):
    location_uuid: UUID
    arrived_at: AwareDatetime | None | UnsetType = UNSET
    departed_at: AwareDatetime | None | UnsetType = UNSET


class EncounterCreate(Body):
    patient_uuid: UUID
    location_uuid: UUID
    patient_record_uuid: UUID
    dh_product_uuid: UUID
    admitted_at: AwareDatetime
    score_system: Text
    encounter_type: Text | None | UnsetType = UNSET
    epr_encounter_id: Text | None | UnsetType = UNSET  # "" means a local encounter
    discharged_at: AwareDatetime | None | UnsetType = UNSET
    deleted_at: AwareDatetime | None | UnsetType = UNSET
    child_of_encounter_uuid: UUID | None | UnsetType = UNSET
    spo2_scale: Spo2Scale | None | UnsetType = UNSET  # null means the default, 1
    location_history: list[LocationVisit] | None | UnsetType = UNSET


class EncounterUpdate(Body):
    """Only the fields present change. Null clears what may be empty; fields that cannot be null
    (admitted_at, location_uuid, dh_product_uuid, patient_record_uuid, score_system) refuse it;
    null spo2_scale or child_of_encounter_uuid leaves them as they are."""

    epr_encounter_id: Text | None | UnsetType = UNSET
    encounter_type: Text | None | UnsetType = UNSET
    admitted_at: AwareDatetime | UnsetType = UNSET
    discharged_at: AwareDatetime | None | UnsetType = UNSET
    deleted_at: AwareDatetime | None | UnsetType = UNSET
    location_uuid: UUID | UnsetType = UNSET
    dh_product_uuid: UUID | UnsetType = UNSET
    score_system: Text | UnsetType = UNSET
    patient_record_uuid: UUID | UnsetType = UNSET
    child_of_encounter_uuid: UUID | None | UnsetType = UNSET
    spo2_scale: Spo2Scale | None | UnsetType = UNSET


class EncounterUnlink(Body):
    child_of_encounter_uuid: UUID


class ScoreSystemHistoryUpdate(Body):
    changed_time: AwareDatetime


class EncounterMerge(Body):
    child_record_uuid: UUID
    parent_record_uuid: UUID
    parent_patient_uuid: UUID
    message_uuid: UUID


B = TypeVar("B", bound=Body)


def decode(model: type[B], raw: bytes) -> B:
    """The body as `model`, or a 400 (ValidationException) whose message names the field."""
    if not raw.strip():
        raise ValidationException("a JSON request body is required")
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as error:
        raise ValidationException(f"invalid request body: {error}") from None
    except msgspec.DecodeError as error:
        raise ValidationException(f"the request body is not valid JSON: {error}") from None


def encode(body: Body) -> str:
    """The body as JSON text for a jsonb parameter; unset fields are left out."""
    return msgspec.json.encode(body).decode()
