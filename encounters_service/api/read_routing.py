"""Which read routes may run on a hot standby (DATABASE_READ_URL and READ_ROUTES), as one table,
and `reads(request)`: where the read route of a request runs its queries.

- census: the ward and population questions, polled all day, for which an answer as of a moment
  ago (READ_MAX_LAG_MS at most) is right. On a standby with READ_ROUTES=census (the default) or all.
- read_then_write: what platform services read just before they write, and expect to show their
  own last write: the primary, unless READ_ROUTES=all.
- primary: always the primary.
A caller that must see its own write on a standby sends back the X-Encounters-LSN of the write's
answer (standbys.py). README "Deploying beyond one machine" has the same table.
"""

from __future__ import annotations

from litestar import Request
from litestar.exceptions import ValidationException

from encounters_service.api.common import database
from encounters_service.db import Database
from encounters_service.standbys import StandbyReads, parse_position

CENSUS = "census"
READ_THEN_WRITE = "read_then_write"
PRIMARY = "primary"
ROUTE_READS = {
    "POST /dhos/v1/encounter/locations": CENSUS,
    "POST /dhos/v1/encounter/patients": CENSUS,
    "POST /dhos/v1/encounter/locations/patient_count": CENSUS,
    "GET /dhos/v2/encounter/latest": CENSUS,
    "POST /dhos/v2/encounter/latest": CENSUS,
    "GET /dhos/v2/encounters": CENSUS,  # modified_since
    "GET /dhos/v1/encounter/{encounter_id}": READ_THEN_WRITE,
    "GET /dhos/v2/encounter": READ_THEN_WRITE,  # by patient or EPR encounter id
    "GET /dhos/v1/encounter/{encounter_id}/children": READ_THEN_WRITE,
    "GET /dhos/v1/encounter/{encounter_id}/merge_history": READ_THEN_WRITE,
    "GET /dhos/v1/encounter/{encounter_id}/history": READ_THEN_WRITE,
    "GET /dhos/v1/encounter/{encounter_id}/history/{version}": READ_THEN_WRITE,
    # The change feed hands out what the primary's snapshot shows as final (sql/queries/encounters/changes.sql).
    "GET /dhos/v2/encounters/changes": PRIMARY,
}
ON_STANDBY = {"census": {CENSUS}, "all": {CENSUS, READ_THEN_WRITE}, "none": set()}  # by READ_ROUTES
WRITTEN_POSITION = "X-Encounters-LSN"  # a write answer's commit position; sent back on a read
# Their OpenAPI descriptions: of the write answers, and of the requests of the routes above.
WRITTEN_POSITION_ANSWER = {
    WRITTEN_POSITION: "Only when the service reads from standbys (DATABASE_READ_URL): a WAL position past this"
    " write's commit. Send it back on a read to see the write there."
}
WRITTEN_POSITION_READ = {
    WRITTEN_POSITION: "The X-Encounters-LSN of a write's answer: the read then runs on a standby only once it has"
    " replayed that write, else on the primary. Ignored without standbys."
}


def standby_routes(read_routes: str) -> frozenset[str]:
    """The "METHOD /path template" of the routes that run on a standby with READ_ROUTES=read_routes."""
    return frozenset(route for route, kind in ROUTE_READS.items() if kind in ON_STANDBY[read_routes])


def reads(request: Request) -> Database | StandbyReads:
    """The primary, or its standbys when there are some and this route may run there."""
    state = request.app.state
    if state.standbys is None or f"{request.method} {request.scope['path_template']}" not in state.standby_routes:
        return database(request)
    return StandbyReads(state.standbys, database(request), _written_position(request))


def _written_position(request: Request) -> int | None:
    header = request.headers.get(WRITTEN_POSITION)
    if header is None:
        return None
    try:
        return parse_position(header.strip())
    except ValueError:
        raise ValidationException(
            f"{WRITTEN_POSITION} must be a WAL position as a write answered it, such as 0/16B3740"
        ) from None
