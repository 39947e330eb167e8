"""Request bodies: msgspec Structs, decoded strictly, and their re-encoding for SQL functions;
and the shapes of the responses, for the OpenAPI document (api/openapi.py).

Litestar converts `data:` bodies leniently ("1" becomes 1, "true" becomes True), so every handler
that takes a body takes it raw and decodes it here with msgspec's strict JSON decoder. Optional fields default
to UNSET, which msgspec leaves out when encoding: the SQL functions then see "absent" and
"null" as different things (a PATCH changes only the fields it names).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal, TypeVar, get_args, get_type_hints
from uuid import UUID

import msgspec
from litestar.exceptions import ValidationException
from msgspec import UNSET, UnsetType

from encounters_service.instants import AwareDatetime, in_utc

Spo2Scale = Annotated[int, msgspec.Meta(ge=1, le=2)]
# A scale a body asks for: any integer, since whether the caller may ask for a change (403 without
# can_edit_ews) is judged first, in SQL, and only then whether it is a scale (1 or 2, else 400).
AskedSpo2Scale = Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 1, "maximum": 2})]
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL
Text = Annotated[str, msgspec.Meta(pattern=NO_NUL)]
MAX_LIST_ITEMS = 10_000  # the longest list a body may hold
# Indexed (unique among live encounters), and an index entry holds at most 2704 bytes.
EprId = Annotated[str, msgspec.Meta(pattern=NO_NUL, max_length=255)]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """A request body: unknown fields are refused; datetimes are kept in UTC, within the range of
    instants.in_utc (msgspec turns its ValueError into a ValidationError at the Struct's path)."""

    def __post_init__(self) -> None:
        for name in _datetime_fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, datetime):
                setattr(self, name, in_utc(name, value))


@functools.cache
def _datetime_fields(body: type[Body]) -> tuple[str, ...]:
    """The fields of a body that may hold a datetime: those typed AwareDatetime (possibly | None)."""
    hints = get_type_hints(body, include_extras=True)
    return tuple(name for name in body.__struct_fields__ if AwareDatetime in (hints[name], *get_args(hints[name])))


class LocationVisit(Body):
    location_uuid: UUID
    arrived_at: AwareDatetime | UnsetType | None = UNSET
    departed_at: AwareDatetime | UnsetType | None = UNSET


class EncounterCreate(Body):
    patient_uuid: UUID
    location_uuid: UUID
    patient_record_uuid: UUID
    dh_product_uuid: UUID
    admitted_at: AwareDatetime
    score_system: Text
    encounter_type: Text | UnsetType | None = UNSET
    epr_encounter_id: EprId | UnsetType | None = UNSET  # "" means a local encounter
    discharged_at: AwareDatetime | UnsetType | None = UNSET
    deleted_at: AwareDatetime | UnsetType | None = UNSET
    child_of_encounter_uuid: UUID | UnsetType | None = UNSET
    spo2_scale: AskedSpo2Scale | UnsetType | None = UNSET  # null means the default, 1
    location_history: Annotated[list[LocationVisit], msgspec.Meta(max_length=MAX_LIST_ITEMS)] | UnsetType | None = UNSET


class EncounterUpdate(Body):
    """Only the fields present change. Null clears what may be empty; fields that cannot be null
    (admitted_at, location_uuid, dh_product_uuid, patient_record_uuid, score_system) refuse it;
    null spo2_scale or child_of_encounter_uuid leaves them as they are."""

    epr_encounter_id: EprId | UnsetType | None = UNSET
    encounter_type: Text | UnsetType | None = UNSET
    admitted_at: AwareDatetime | UnsetType = UNSET
    discharged_at: AwareDatetime | UnsetType | None = UNSET
    deleted_at: AwareDatetime | UnsetType | None = UNSET
    location_uuid: UUID | UnsetType = UNSET
    dh_product_uuid: UUID | UnsetType = UNSET
    score_system: Text | UnsetType = UNSET
    patient_record_uuid: UUID | UnsetType = UNSET
    child_of_encounter_uuid: UUID | UnsetType | None = UNSET
    spo2_scale: AskedSpo2Scale | UnsetType | None = UNSET


class EncounterUnlink(Body):
    child_of_encounter_uuid: UUID


class ScoreSystemHistoryUpdate(Body):
    changed_time: AwareDatetime


class EncounterMerge(Body):
    child_record_uuid: UUID
    parent_record_uuid: UUID
    parent_patient_uuid: UUID
    message_uuid: UUID


class EncounterMergeUndo(Body):
    """Which merge to undo: its message."""

    message_uuid: UUID


B = TypeVar("B")


def decode(model: type[B], raw: bytes) -> B:
    """The body as `model` (a Body, or e.g. a list), or a 400 (ValidationException) whose message
    names the field."""
    if not raw.strip():
        raise ValidationException("a JSON request body is required")
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as error:
        raise ValidationException(f"invalid request body: {error}") from None
    except msgspec.DecodeError as error:
        raise ValidationException(f"the request body is not valid JSON: {error}") from None


def encode(body: Body | Sequence[Body]) -> str:
    """The body (or a list of bodies) as JSON text for a jsonb parameter; unset fields are left out."""
    return msgspec.json.encode(body).decode()


# Response shapes. PostgreSQL builds every response (encounters_api.encounter_json and the query
# files); these Structs only describe it, for the OpenAPI document, and forbid unknown fields
# because callers check the keys strictly. tests/reliability checks real responses against them.

Instant = Annotated[
    str,
    msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$", extra_json_schema={"format": "date-time"}),
]
EprEncounterId = Annotated[str, msgspec.Meta(min_length=1)]


class Shape(msgspec.Struct, forbid_unknown_fields=True):
    """A response document."""


class ErrorBody(msgspec.Struct):
    """Every error: a message for a human (more keys may follow)."""

    message: str


class ProductRef(Shape):
    uuid: UUID


class ScoreSystemChange(Shape):
    uuid: UUID
    changed_time: Instant
    score_system: str | None
    previous_score_system: str | None
    spo2_scale: Spo2Scale | None
    previous_spo2_scale: Spo2Scale | None
    created_by: str
    changed_by: str


class LocationStay(Shape):
    location_uuid: UUID
    arrived_at: Instant | None
    departed_at: Instant | None
    created_at: Instant


class CompactEncounter(Shape):
    """The compact form (compact=true)."""

    uuid: UUID
    epr_encounter_id: EprEncounterId | None
    admitted_at: Instant
    discharged_at: Instant | None
    deleted_at: Instant | None
    location_uuid: UUID
    patient_uuid: UUID
    patient_record_uuid: UUID


class Encounter(CompactEncounter):
    """The full form; child_of_encounter_uuid only when the encounter has a parent."""

    encounter_type: str | None
    score_system: str | None
    spo2_scale: Spo2Scale
    dh_product: Annotated[list[ProductRef], msgspec.Meta(min_length=1, max_length=1)]
    created: Instant
    score_system_history: list[ScoreSystemChange]
    location_history: list[LocationStay]
    child_of_encounter_uuid: UUID | UnsetType = UNSET


class ListedEncounter(Encounter, kw_only=True):
    """The full form with the uuids of all descendants, deleted ones included."""

    child_encounter_uuids: list[UUID]


class ExpandableCompactEncounter(CompactEncounter):
    """The compact form; with expanded=true also created, created_by, modified, modified_by."""

    created: Instant | UnsetType = UNSET
    created_by: str | UnsetType = UNSET
    modified: Instant | UnsetType = UNSET
    modified_by: str | UnsetType = UNSET


class ExpandableEncounter(Encounter):
    """The full form; with expanded=true also created_by, modified, modified_by."""

    created_by: str | UnsetType = UNSET
    modified: Instant | UnsetType = UNSET
    modified_by: str | UnsetType = UNSET


class ExpandableListedEncounter(ExpandableEncounter, kw_only=True):
    """The full form with child_encounter_uuids; with expanded=true also created_by, modified, modified_by."""

    child_encounter_uuids: list[UUID]


class ChangedEncounter(Encounter, kw_only=True):
    """The expanded full form, as the change feed shows it: created_by, modified, modified_by always."""

    created_by: str
    modified: Instant
    modified_by: str


class EncounterVersion(Shape):
    """One version of an encounter, as it was (GET /dhos/v1/encounter/{id}/history)."""

    version: Annotated[int, msgspec.Meta(ge=1)]
    modified: Instant
    modified_by: str
    encounter: ChangedEncounter


class ChangePage(Shape):
    """A page of the change feed (GET /dhos/v2/encounters/changes)."""

    encounters: list[ChangedEncounter]
    cursor: Annotated[str, msgspec.Meta(description="where to read on from: the next request's cursor")]
    more: Annotated[bool, msgspec.Meta(description="true: more changes can be read now")]


class MergeTotal(Shape):
    total: Annotated[int, msgspec.Meta(ge=0)]


class MergeRecord(Shape):
    """The record and patient an encounter had before a merge."""

    record_uuid: UUID
    patient_uuid: UUID
    message_uuid: UUID
    merged_at: Instant


class Running(Shape):
    running: Literal[True]


class Version(Shape):
    version: str
    circle: str
    hash: str


class Health(Shape):
    database: Literal["ok"]
    outbox_waiting: Annotated[int, msgspec.Meta(ge=0)]
    outbox_oldest_age_seconds: float | None
