"""The original service's development routes, for the platform's test and demo tooling: create many
encounters in one call, and empty the tables. Served only when ALLOW_DROP_DATA=true (which the
settings refuse together with ENVIRONMENT=production); otherwise they are not routes at all (404)."""

from __future__ import annotations

import time
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Request, Response, post
from litestar.params import RawBody

from encounters_service.api.common import BEARER, WRITE, caller_of, database, json_response
from encounters_service.api.openapi import documented
from encounters_service.models import MAX_LIST_ITEMS, EncounterCreate, decode, encode

BULK_MAX_BODY_BYTES = 16 * 1024 * 1024  # 10,000 create bodies of a few hundred bytes each
# Created in statements of this many, so that each stays well within the statement timeout
# (about 1 ms per encounter, more on a busy machine); all of them in one transaction.
BULK_STATEMENT_ITEMS = 200
BulkBody = Annotated[list[EncounterCreate], msgspec.Meta(max_length=MAX_LIST_ITEMS)]


class DropDataResult(msgspec.Struct, forbid_unknown_fields=True):
    complete: bool
    time_taken: str  # e.g. "0.012s"


@post(
    "/encounter/bulk",
    opt=WRITE,
    status_code=200,
    request_max_body_size=BULK_MAX_BODY_BYTES,
    summary="Create many encounters in one transaction, all or none (only with ALLOW_DROP_DATA)",
    security=BEARER,
    operation_class=documented(list[UUID], body=BulkBody, errors=[409, 413, 422]),
)
async def create_encounters(request: Request, body: RawBody) -> Response:
    caller, bodies = caller_of(request), decode(BulkBody, body)
    created: list[str] = []
    async with database(request).transaction() as value:
        for start in range(0, len(bodies), BULK_STATEMENT_ITEMS):
            uuids = await value(
                "writes.create_encounters",
                bodies=encode(bodies[start : start + BULK_STATEMENT_ITEMS]),
                first_position=start + 1,
                caller=caller.id,
                can_edit_ews=caller.can_edit_ews,
            )
            created += msgspec.json.decode(uuids, type=list[str])
    return json_response(msgspec.json.encode(created))


@post(
    "/drop_data",
    opt=WRITE,
    status_code=200,
    summary="Empty every data table, keeping the schema (only with ALLOW_DROP_DATA)",
    security=BEARER,
    operation_class=documented(DropDataResult),
)
async def drop_data(request: Request) -> DropDataResult:
    started = time.perf_counter()
    await database(request).value("admin.drop_data")
    return DropDataResult(complete=True, time_taken=f"{time.perf_counter() - started:.3f}s")


ROUTES = [create_encounters, drop_data]
