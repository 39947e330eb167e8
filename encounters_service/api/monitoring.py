"""Routes without authentication: liveness, version, health (database and event backlog)."""

from __future__ import annotations

from litestar import Request, Response, get

from encounters_service.api.common import database, json_response
from encounters_service.api.openapi import documented
from encounters_service.models import Health, Running, Version


@get("/running", summary="The service is up", operation_class=documented(Running))
async def running() -> dict[str, bool]:
    return {"running": True}


@get("/version", summary="Package version, build number and git hash", operation_class=documented(Version))
async def version(request: Request) -> dict[str, str]:
    settings = request.app.state.settings
    return {"version": settings.version, "circle": settings.build_number, "hash": settings.git_hash}


@get("/healthcheck", summary="The database answers; outbox backlog", operation_class=documented(Health, errors=[503]))
async def healthcheck(request: Request) -> Response:
    return json_response(await database(request).value("admin.healthcheck"))


ROUTES = [running, version, healthcheck]
