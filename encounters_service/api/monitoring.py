"""Routes without authentication: liveness, version, health (database and event backlog), metrics."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException

from encounters_service import metrics
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


# An operator's route, not part of the API (and not JSON): left out of the OpenAPI document.
@get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    if not request.app.state.settings.metrics_enabled:
        raise NotFoundException()  # METRICS_ENABLED=false: as if there were no such route
    return Response(await metrics.scrape(database(request)), media_type=metrics.CONTENT_TYPE)


ROUTES = [running, version, healthcheck, prometheus_metrics]
