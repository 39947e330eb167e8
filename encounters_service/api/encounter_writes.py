"""Encounter writes — create, update, unlink, merge, score-system-history correction — and the
by-id reads that show their results (one encounter, its merge history).

Each handler decodes its body strictly (models.decode), makes one call to an encounters_api
function (which holds every rule and writes the events in the same transaction), and passes
the JSON that PostgreSQL built through.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, delete, get, patch, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, RawBody

from encounters_service.api.common import (
    BEARER,
    IGNORE_UNKNOWN_QUERY,
    READ,
    WRITE,
    caller_of,
    database,
    header,
    json_response,
    requires,
)
from encounters_service.api.openapi import ETAG, IF_MATCH, IF_NONE_MATCH, documented
from encounters_service.api.read_routing import WRITTEN_POSITION, WRITTEN_POSITION_ANSWER, WRITTEN_POSITION_READ, reads
from encounters_service.auth import WRITE_SCOPE, AuthError
from encounters_service.etags import etag, if_match, none_match
from encounters_service.models import (
    Body,
    Encounter,
    EncounterCreate,
    EncounterMerge,
    EncounterMergeUndo,
    EncounterUnlink,
    EncounterUpdate,
    EncounterVersion,
    MergeRecord,
    MergeTotal,
    ScoreSystemChange,
    ScoreSystemHistoryUpdate,
    decode,
    encode,
)

ENCOUNTER = "/dhos/v1/encounter/{encounter_id:uuid}"


async def _write(
    request: Request, query: str, model: type[Body], raw: RawBody, **params: Any
) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    """Run a write query with the decoded body and the caller's id: its rows, and the answer's
    headers. With standbys (DATABASE_READ_URL), X-Encounters-LSN: a WAL position past the commit,
    for a read that must see this write (api/read_routing.py)."""
    body = encode(decode(model, raw))
    db = database(request)
    rows = await db.rows(query, body=body, caller=caller_of(request).id, **params)
    if request.app.state.standbys is None:
        return rows, {}
    return rows, {WRITTEN_POSITION: await db.value("replication.written_position")}


def _conditional_write(request: Request) -> dict[str, list[int]]:
    """The If-Match condition of a write of one encounter, as its query file takes it."""
    return {"if_match": if_match(request.headers.get("if-match"))}


def _versioned(document: bytes | None, version: int, headers: dict[str, str] | None = None) -> Response:
    """One encounter, its version in the ETag header (never in the JSON: callers check keys strictly)."""
    return json_response(document, {**(headers or {}), "ETag": etag(version)})


@post(
    "/dhos/v2/encounter",
    opt={**WRITE, IGNORE_UNKNOWN_QUERY: True},
    status_code=200,
    summary="Create an encounter",
    security=BEARER,
    operation_class=documented(
        Encounter, body=EncounterCreate, errors=[409, 422], answer_headers={**ETAG, **WRITTEN_POSITION_ANSWER}
    ),
)
async def create_encounter(request: Request, body: RawBody) -> Response:
    can_edit_ews = caller_of(request).can_edit_ews
    [(created, version)], headers = await _write(
        request, "writes.create_encounter", EncounterCreate, body, can_edit_ews=can_edit_ews
    )
    return _versioned(created, version, headers)


@get(
    ENCOUNTER,
    opt=READ,
    summary="One encounter (full form)",
    security=BEARER,
    operation_class=documented(
        Encounter, errors=[304], answer_headers=ETAG, request_headers={**IF_NONE_MATCH, **WRITTEN_POSITION_READ}
    ),
)
async def get_encounter(
    request: Request, encounter_id: FromPath[UUID], show_deleted: FromQuery[bool] = False
) -> Response:
    [(found, version)] = await reads(request).rows(
        "writes.get_encounter", encounter_id=encounter_id, show_deleted=show_deleted
    )
    if none_match(header(request, b"if-none-match"), version):
        return Response(content=b"", status_code=304, headers={"ETag": etag(version)})
    return _versioned(found, version)


@patch(
    ENCOUNTER,
    opt=WRITE,
    summary="Update an encounter",
    security=BEARER,
    operation_class=documented(
        Encounter,
        body=EncounterUpdate,
        errors=[409, 412, 422],
        answer_headers={**ETAG, **WRITTEN_POSITION_ANSWER},
        request_headers=IF_MATCH,
    ),
)
async def update_encounter(request: Request, encounter_id: FromPath[UUID], body: RawBody) -> Response:
    can_edit_ews = caller_of(request).can_edit_ews
    [(refusal, updated, version)], headers = await _write(
        request,
        "writes.update_encounter",
        EncounterUpdate,
        body,
        encounter_id=encounter_id,
        can_edit_ews=can_edit_ews,
        **_conditional_write(request),
    )
    if refusal:
        raise AuthError.forbidden(refusal)
    return _versioned(updated, version, headers)


@delete(
    ENCOUNTER,
    opt=WRITE,
    status_code=200,
    summary="Detach an encounter from its parent",
    security=BEARER,
    operation_class=documented(
        Encounter,
        body=EncounterUnlink,
        errors=[409, 412],
        answer_headers={**ETAG, **WRITTEN_POSITION_ANSWER},
        request_headers=IF_MATCH,
    ),
)
async def unlink_encounter(request: Request, encounter_id: FromPath[UUID], body: RawBody) -> Response:
    [(unlinked, version)], headers = await _write(
        request,
        "writes.unlink_encounter",
        EncounterUnlink,
        body,
        encounter_id=encounter_id,
        **_conditional_write(request),
    )
    return _versioned(unlinked, version, headers)


@patch(
    "/dhos/v1/score_system_history/{history_id:uuid}",
    opt=requires(WRITE_SCOPE, claim="system_id"),
    summary="Correct when a score system change took effect",
    security=BEARER,
    operation_class=documented(
        ScoreSystemChange, body=ScoreSystemHistoryUpdate, answer_headers=WRITTEN_POSITION_ANSWER
    ),
)
async def update_score_system_history(request: Request, history_id: FromPath[UUID], body: RawBody) -> Response:
    [(entry,)], headers = await _write(
        request, "writes.update_score_system_history", ScoreSystemHistoryUpdate, body, history_uuid=history_id
    )
    return json_response(entry, headers)


@post(
    "/dhos/v1/encounter/merge",
    opt={**WRITE, IGNORE_UNKNOWN_QUERY: True},
    status_code=200,
    summary="Move the encounters of a merged patient record",
    security=BEARER,
    operation_class=documented(MergeTotal, body=EncounterMerge, errors=[409], answer_headers=WRITTEN_POSITION_ANSWER),
)
async def merge_encounters(request: Request, body: RawBody) -> Response:
    [(total,)], headers = await _write(request, "writes.merge_encounters", EncounterMerge, body)
    return json_response(total, headers)


@post(
    "/dhos/v1/encounter/merge/undo",
    opt=WRITE,
    status_code=200,
    summary="Undo a merge: move the encounters it moved back",
    description=(
        "Every encounter the merge with this message moved goes back to the record and patient it had before, "
        "in one transaction, with one DM000007 event each; its merge history shows the undo as an entry of its "
        "own (the merge's message_uuid again). 404: no merge with this message; 409, nothing moved: an encounter "
        "has moved since, or moving back would give a patient two open local encounters. "
        'A second undo of the same merge answers {"total": 0}.'
    ),
    security=BEARER,
    operation_class=documented(
        MergeTotal, body=EncounterMergeUndo, errors=[404, 409], answer_headers=WRITTEN_POSITION_ANSWER
    ),
)
async def undo_merge(request: Request, body: RawBody) -> Response:
    [(total,)], headers = await _write(request, "writes.undo_merge", EncounterMergeUndo, body)
    return json_response(total, headers)


@get(
    f"{ENCOUNTER}/merge_history",
    opt=READ,
    summary="An encounter's record merges, oldest first",
    security=BEARER,
    operation_class=documented(list[MergeRecord], request_headers=WRITTEN_POSITION_READ),
)
async def merge_history(request: Request, encounter_id: FromPath[UUID]) -> Response:
    return json_response(await reads(request).value("writes.merge_history", encounter_id=encounter_id))


@get(
    f"{ENCOUNTER}/history",
    opt=READ,
    summary="Every version of an encounter, oldest first",
    security=BEARER,
    operation_class=documented(list[EncounterVersion], request_headers=WRITTEN_POSITION_READ),
)
async def encounter_history(request: Request, encounter_id: FromPath[UUID]) -> Response:
    return json_response(await reads(request).value("writes.encounter_history", encounter_id=encounter_id))


@get(
    f"{ENCOUNTER}/history/{{version:int}}",
    opt=READ,
    summary="One version of an encounter",
    security=BEARER,
    operation_class=documented(EncounterVersion, request_headers=WRITTEN_POSITION_READ),
)
async def encounter_history_version(request: Request, encounter_id: FromPath[UUID], version: FromPath[int]) -> Response:
    found = await reads(request).value("writes.encounter_history_version", encounter_id=encounter_id, version=version)
    if found is None:
        raise NotFoundException(f"encounter {encounter_id} has no version {version}")
    return json_response(found)


ROUTES = [
    create_encounter,
    get_encounter,
    update_encounter,
    unlink_encounter,
    update_score_system_history,
    merge_encounters,
    undo_merge,
    merge_history,
    encounter_history,
    encounter_history_version,
]
