"""The stack's floor for a single-encounter read: the service's server and pool, and nothing else.

    .venv/bin/python bench/bare_app.py   # DATABASE_URL and PORT from the environment; bench.py runs it

An ASGI app with no framework, no authentication, no checks and no request log: every request
runs the get-by-id query file for the uuid at the end of its path on the service's own pool
(same session settings, prepared statements, JSON as bytes) and answers that document. Served
as `encounters-service serve` serves the service (same HTTP server, settings and workers), it
measures what an HTTP request that runs one query costs before any of the service's code runs.
"""

from __future__ import annotations

from encounters_service.cli import DEFAULT_WORKERS, http_server
from encounters_service.db import Database, make_pool
from encounters_service.settings import load_settings

PREFIX = "/dhos/v1/encounter/"
OK = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
NOT_FOUND = {"type": "http.response.start", "status": 404, "headers": []}


def app():
    settings = load_settings()
    database = Database(make_pool(settings, settings.database_url))

    async def lifespan(receive, send) -> None:
        while True:
            event = (await receive())["type"]
            if event == "lifespan.startup":
                await database.pool.open(wait=True)
                await send({"type": "lifespan.startup.complete"})
            elif event == "lifespan.shutdown":
                await database.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def bare(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if not scope["path"].startswith(PREFIX):
            await send(NOT_FOUND)
            await send({"type": "http.response.body", "body": b""})
            return
        encounter_id = scope["path"].removeprefix(PREFIX)
        document = await database.value("writes.get_encounter", encounter_id=encounter_id, show_deleted=False)
        await send(OK)
        await send({"type": "http.response.body", "body": document or b"null"})

    return bare


if __name__ == "__main__":
    http_server("bare_app:app", load_settings(), workers=DEFAULT_WORKERS).serve()
