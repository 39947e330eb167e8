"""The read routes: each runs one query file of sql/queries/encounters and returns its JSON as is."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, QueryParameter, RawBody

from encounters_service.api.common import BEARER, READ, caller_of, json_response
from encounters_service.api.openapi import documented
from encounters_service.api.read_routing import WRITTEN_POSITION_READ, reads
from encounters_service.instants import DATETIME_RULES
from encounters_service.models import (
    MAX_LIST_ITEMS,
    NO_NUL,
    CompactEncounter,
    Encounter,
    ExpandableCompactEncounter,
    ExpandableEncounter,
    ExpandableListedEncounter,
    ListedEncounter,
    decode,
)
from encounters_service.query_params import OPEN_NOW, OPEN_OR_DISCHARGED, instant, instant_or_date

# Decoded strictly by models.decode, like every body (Litestar's own decoding of `data` recurses
# without a limit: a deeply nested array was a 500).
UuidList = Annotated[
    list[UUID], msgspec.Meta(max_length=MAX_LIST_ITEMS, description=f"JSON array of uuids, at most {MAX_LIST_ITEMS:,}")
]
# Instants are parsed by query_params (strictly, with a message naming the parameter); these only document them.
OpenAsOf = Annotated[
    str | None,
    QueryParameter(
        description=f"RFC 3339 datetime with an offset, {DATETIME_RULES}",
        schema_extra={"format": "date-time"},
    ),
]
ModifiedSince = Annotated[
    str,
    QueryParameter(
        description=f"a date YYYY-MM-DD (midnight UTC) or an RFC 3339 datetime with an offset, {DATETIME_RULES}",
        schema_extra={"any_of": [{"format": "date"}, {"format": "date-time"}]},
    ),
]


async def _heavy_read(request: Request, query: str, **params: object) -> bytes | None:
    """The query's value, run within the caller's share of the connections for reads whose answer
    grows with the data (api/read_gate.py): over it, 503 without touching the database."""
    async with request.app.state.read_gate.slot(caller_of(request).id):
        # JSON, as PostgreSQL built it, fetched in pieces: one megabytes-long value would leave the
        # pool's connection with a buffer as large for its life (db.py, PIECE_BYTES)
        document: bytes | None = await reads(request).large_value(query, **params)
    return document


# More descendants than one answer lists (encounters_api.check_descendant_limit, SQLSTATE EN422).
TOO_MANY_DESCENDANTS = 422


def _open_as_of(text: str | None, when_absent: str) -> object:
    """The instant an `open_as_of` query value names, or the query files' sentinel for "not given"."""
    return when_absent if text is None else instant("open_as_of", text)


@get(
    "/dhos/v1/encounter/{encounter_id:uuid}/children",
    opt=READ,
    summary="Uuids of all descendants",
    security=BEARER,
    operation_class=documented(list[UUID], errors=[TOO_MANY_DESCENDANTS], request_headers=WRITTEN_POSITION_READ),
)
async def child_encounters(
    request: Request, encounter_id: FromPath[UUID], show_deleted: FromQuery[bool] = False
) -> Response:
    return json_response(
        await _heavy_read(request, "encounters.descendants", encounter_id=encounter_id, show_deleted=show_deleted)
    )


@get(
    "/dhos/v2/encounter",
    opt=READ,
    summary="Encounters by patient and/or EPR encounter id",
    security=BEARER,
    operation_class=documented(
        list[ExpandableListedEncounter | ExpandableCompactEncounter],
        errors=[TOO_MANY_DESCENDANTS],
        request_headers=WRITTEN_POSITION_READ,
    ),
)
async def encounters_by_patient_or_epr_id(
    request: Request,
    patient_id: FromQuery[UUID | None] = None,
    epr_encounter_id: Annotated[str | None, QueryParameter(schema_extra={"pattern": NO_NUL})] = None,
    open_as_of: OpenAsOf = None,
    compact: FromQuery[bool] = False,
    expanded: FromQuery[bool] = False,
    show_deleted: FromQuery[bool] = False,
    show_children: FromQuery[bool] = False,
) -> Response:
    """Open first, then newest admission, then newest creation. With open_as_of: only the patient's
    latest encounter open then (a list of at most one; show_deleted and show_children do not apply)."""
    epr_encounter_id = epr_encounter_id or ""  # "" means null, as in bodies
    if patient_id is None and not epr_encounter_id:
        raise ValidationException("patient_id or epr_encounter_id is required")
    if open_as_of is None:
        document = await _heavy_read(
            request,
            "encounters.by_patient_or_epr_id",
            patient_id=str(patient_id or ""),
            epr_encounter_id=epr_encounter_id,
            compact=compact,
            expanded=expanded,
            show_deleted=show_deleted,
            show_children=show_children,
        )
    elif patient_id is None:
        raise ValidationException("open_as_of needs patient_id")
    else:
        document = await _heavy_read(
            request,
            "encounters.by_patient_open_as_of",
            patient_id=patient_id,
            epr_encounter_id=epr_encounter_id,
            open_as_of=instant("open_as_of", open_as_of),
            compact=compact,
            expanded=expanded,
        )
    return json_response(document)


@get(
    "/dhos/v2/encounters",
    opt=READ,
    summary="Encounters modified since a time, newest change first",
    security=BEARER,
    operation_class=documented(
        list[ExpandableEncounter | ExpandableCompactEncounter], request_headers=WRITTEN_POSITION_READ
    ),
)
async def encounters_modified_since(
    request: Request,
    modified_since: ModifiedSince,
    compact: FromQuery[bool] = False,
    expanded: FromQuery[bool] = False,
    show_deleted: FromQuery[bool] = False,
    show_children: FromQuery[bool] = False,
) -> Response:
    return json_response(
        await _heavy_read(
            request,
            "encounters.modified_since",
            modified_since=instant_or_date("modified_since", modified_since),
            compact=compact,
            expanded=expanded,
            show_deleted=show_deleted,
            show_children=show_children,
        )
    )


@get(
    "/dhos/v2/encounter/latest",
    opt=READ,
    summary="A patient's latest encounter",
    security=BEARER,
    operation_class=documented(
        ListedEncounter | CompactEncounter, errors=[404, TOO_MANY_DESCENDANTS], request_headers=WRITTEN_POSITION_READ
    ),
)
async def latest_encounter(
    request: Request,
    patient_id: FromQuery[UUID],
    open_as_of: OpenAsOf = None,
    compact: FromQuery[bool] = False,
) -> Response:
    document = await reads(request).value(
        "encounters.latest",
        patient_id=patient_id,
        open_as_of=_open_as_of(open_as_of, OPEN_OR_DISCHARGED),
        compact=compact,
    )
    if document is None:
        as_of = "" if open_as_of is None else f" open as of {open_as_of}"
        raise NotFoundException(f"no encounter{as_of} found for patient {patient_id}")
    return json_response(document)


async def _for_listed_ids(
    request: Request, query: str, ids: str, body: bytes, open_as_of: str | None, when_absent: str, **flags: bool
) -> Response:
    """Run `query` on the body's list of uuids (passed as the parameter `ids`), open as of a time.

    The uuids go to PostgreSQL as one array literal of the body's own strings, once they are
    known to be uuids: psycopg dumps a list of 2,000 UUID objects in about 6 ms of Python, and
    str() of each costs 3 ms; this costs 0.1 ms, and PostgreSQL parses the literal as uuid[].
    """
    decode(UuidList, body)  # a 400 naming what is wrong, unless it is a list of uuids
    listed = "{" + ",".join(msgspec.json.decode(body, type=list[str])) + "}"
    open_at = _open_as_of(open_as_of, when_absent)
    return json_response(await _heavy_read(request, query, **{ids: listed}, open_as_of=open_at, **flags))


@post(
    "/dhos/v2/encounter/latest",
    opt=READ,
    status_code=200,
    summary="The latest encounter of each patient",
    security=BEARER,
    operation_class=documented(
        dict[UUID, ListedEncounter | CompactEncounter],
        body=UuidList,
        errors=[TOO_MANY_DESCENDANTS],
        request_headers=WRITTEN_POSITION_READ,
    ),
)
async def latest_encounters(
    request: Request, body: RawBody, open_as_of: OpenAsOf = None, compact: FromQuery[bool] = False
) -> Response:
    return await _for_listed_ids(
        request, "encounters.latest_per_patient", "patient_ids", body, open_as_of, OPEN_OR_DISCHARGED, compact=compact
    )


@post(
    "/dhos/v1/encounter/locations",
    opt=READ,
    status_code=200,
    summary="Open encounters at locations",
    security=BEARER,
    operation_class=documented(
        list[Encounter | CompactEncounter], body=UuidList, request_headers=WRITTEN_POSITION_READ
    ),
)
async def open_encounters_at_locations(
    request: Request, body: RawBody, open_as_of: OpenAsOf = None, compact: FromQuery[bool] = False
) -> Response:
    return await _for_listed_ids(
        request, "encounters.open_at_locations", "location_ids", body, open_as_of, OPEN_NOW, compact=compact
    )


@post(
    "/dhos/v1/encounter/patients",
    opt=READ,
    status_code=200,
    summary="Open encounters of patients",
    security=BEARER,
    operation_class=documented(
        list[Encounter | CompactEncounter], body=UuidList, request_headers=WRITTEN_POSITION_READ
    ),
)
async def open_encounters_for_patients(
    request: Request, body: RawBody, open_as_of: OpenAsOf = None, compact: FromQuery[bool] = False
) -> Response:
    return await _for_listed_ids(
        request, "encounters.open_for_patients", "patient_ids", body, open_as_of, OPEN_NOW, compact=compact
    )


@post(
    "/dhos/v1/encounter/locations/patient_count",
    opt=READ,
    status_code=200,
    summary="Patients with an open encounter, per location",
    security=BEARER,
    operation_class=documented(
        dict[UUID, Annotated[int, msgspec.Meta(ge=1)]], body=UuidList, request_headers=WRITTEN_POSITION_READ
    ),
)
async def patient_count_per_location(request: Request, body: RawBody, open_as_of: OpenAsOf = None) -> Response:
    return await _for_listed_ids(
        request, "encounters.patient_count_per_location", "location_ids", body, open_as_of, OPEN_NOW
    )


ROUTES = [
    child_encounters,
    encounters_by_patient_or_epr_id,
    encounters_modified_since,
    latest_encounter,
    latest_encounters,
    open_encounters_at_locations,
    open_encounters_for_patients,
    patient_count_per_location,
]
