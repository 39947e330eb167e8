"""The change feed: GET /dhos/v2/encounters/changes, the encounters changed after a cursor, in the
order their changes became final (sql/queries/encounters/changes.sql says why none is skipped)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter

from encounters_service import cursors
from encounters_service.api.common import BEARER, READ, caller_of, database
from encounters_service.api.openapi import documented
from encounters_service.models import ChangePage
from encounters_service.settings import Settings

MAX_PAGE = 1000

Cursor = Annotated[
    str | None,
    QueryParameter(description="the cursor of the previous page, as it was given; none: from the beginning"),
]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description=f"at most this many encounters (1 to {MAX_PAGE})")]


class _Page(msgspec.Struct):
    """What sql/queries/encounters/changes.sql answers; the encounters are passed on as they are."""

    encounters: msgspec.Raw
    last_transaction: str | None
    last_uuid: UUID | None
    more: bool


@get(
    "/dhos/v2/encounters/changes",
    opt=READ,
    summary="The change feed: encounters changed after a cursor, in the order their changes became final",
    security=BEARER,
    operation_class=documented(ChangePage),
)
async def encounter_changes(request: Request, cursor: Cursor = None, limit: Limit = 100) -> Response:
    settings: Settings = request.app.state.settings
    try:
        after = cursors.START if cursor is None else cursors.decode(settings.hs_key, cursor)
    except cursors.BadCursor as error:
        raise ValidationException(str(error)) from None
    async with request.app.state.read_gate.slot(caller_of(request).id):  # an answer of up to MAX_PAGE encounters
        found = await database(request).value(
            "encounters.changes", after_transaction=after.transaction, after_uuid=after.uuid, page_size=limit
        )
    page = msgspec.json.decode(found, type=_Page)
    if page.last_transaction is not None and page.last_uuid is not None:  # else an empty page: start there again
        after = cursors.Place(page.last_transaction, page.last_uuid)
    answer = {"encounters": page.encounters, "cursor": cursors.encode(settings.hs_key, after), "more": page.more}
    return Response(content=msgspec.json.encode(answer), media_type="application/json")


ROUTES = [encounter_changes]
