"""create_app(settings, conninfo): the Litestar application, its routes and its lifespan;
app_from_env(): the same, as each server worker of `encounters-service serve` builds it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from encounters_service.api import ROUTES, development
from encounters_service.api.common import check_request
from encounters_service.api.docs_assets import render_plugins
from encounters_service.api.read_gate import ReadGate
from encounters_service.api.read_routing import standby_routes
from encounters_service.auth import Authenticator
from encounters_service.compression import compressed
from encounters_service.db import Database, make_pool
from encounters_service.errors import EXCEPTION_HANDLERS
from encounters_service.guards import check_content, guarded
from encounters_service.logs import configure_logging, request_logging
from encounters_service.metrics import count_request, publishing
from encounters_service.relay import Relay, relay_in_background
from encounters_service.settings import Settings, SettingsError, load_settings
from encounters_service.standbys import Standbys

MAX_BODY_BYTES = 1024 * 1024
RELAY_ENV = "ENCOUNTERS_SERVE_RELAY"  # set to "1" by `serve --relay` for its workers


def create_app(settings: Settings, conninfo: str, *, relay: bool = False) -> Litestar:
    """relay=True (serve --relay): this process also publishes the outbox, as a background task."""
    pool = make_pool(settings, conninfo)
    standbys = Standbys(settings, settings.database_read_url, conninfo) if settings.database_read_url else None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Fail fast: the service does not start against a database it cannot reach.
        await pool.open(wait=True, timeout=settings.pool_open_timeout_s)
        app.state.db = Database(pool)
        try:
            if standbys is None:
                yield
            else:
                async with standbys.watching():
                    yield
        finally:
            await pool.close()

    lifespans: list[Callable[[Litestar], AbstractAsyncContextManager[Any]]] = [lifespan]
    if settings.metrics_enabled:
        lifespans.append(lambda _app: publishing(pool))
    if relay:
        lifespans.append(lambda _app: relay_in_background(Relay(settings, conninfo)))

    app = Litestar(
        route_handlers=[*ROUTES, *(development.ROUTES if settings.allow_drop_data else [])],
        lifespan=lifespans,
        before_request=_before_request,
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
        request_max_body_size=MAX_BODY_BYTES,
        state=State(
            {
                "settings": settings,
                "authenticator": Authenticator(settings),
                "read_gate": ReadGate.for_pool(settings.pool_max_size),
                "standbys": standbys,
                "standby_routes": standby_routes(settings.read_routes),
            }
        ),
        openapi_config=OpenAPIConfig(
            title="Encounters service",
            version=settings.version,
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
            render_plugins=render_plugins(),
        ),
        debug=False,
    )
    allowed_methods = {route.path_format: route.methods for route in app.routes}
    # Inside the guards, so that a HEAD (a GET there) carries the GET's headers: its coding and length.
    app.asgi_handler = compressed(app.asgi_handler)
    app.asgi_handler = guarded(
        app.asgi_handler, body_timeout_s=settings.http_body_timeout_s, allowed_methods=allowed_methods
    )
    # Outermost, so that unknown routes (404) and wrong methods (405) are logged, and (metrics)
    # counted, too: the request log's middleware counts each request as it logs it.
    app.asgi_handler = request_logging(app.asgi_handler, count=count_request if settings.metrics_enabled else None)
    return app


async def _before_request(request: Request) -> None:
    if request.method == "OPTIONS":  # Litestar's own answer, the Allow header: no token, any query
        return
    await check_request(request)
    check_content(request)


def app_from_env() -> Litestar:
    """The app of one server worker: settings from the environment, where `encounters-service serve`
    has put the database it chose (DATABASE_URL) and its --relay flag (ENCOUNTERS_SERVE_RELAY)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        raise SettingsError("DATABASE_URL is not set: start the service with `encounters-service serve`")
    return create_app(settings, settings.database_url, relay=os.environ.get(RELAY_ENV) == "1")
