"""The stack's floor: the service's server and pool answering two of its routes, and nothing else.

    .venv/bin/python bench/bare_app.py   # DATABASE_URL and PORT from the environment; bench.py runs it

An ASGI app with no framework, no authentication, no checks and no request log. It answers
GET /dhos/v1/encounter/{uuid} (get by id: one query, no body) and POST
/dhos/v1/encounter/locations/patient_count (a JSON list of location uuids read from the body) by
running the service's query files on the service's own pool (same session settings, prepared
statements, JSON as bytes). Served as `encounters-service serve` serves the service (same HTTP
server and settings, WEB_CONCURRENCY workers), it measures what a request that runs one query
costs before any of the service's code runs.
"""

from __future__ import annotations

import msgspec

from encounters_service.cli import default_workers, http_server
from encounters_service.db import Database, make_pool
from encounters_service.settings import load_settings

ENCOUNTER = "/dhos/v1/encounter/"
PATIENT_COUNT = "/dhos/v1/encounter/locations/patient_count"


def start(status: int) -> dict:
    return {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


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

    async def answer(method: str, path: str, receive) -> bytes | None:
        if method == "POST" and path == PATIENT_COUNT:
            listed = "{" + ",".join(msgspec.json.decode(await read_body(receive), type=list[str])) + "}"
            return await database.value(
                "encounters.patient_count_per_location", location_ids=listed, open_as_of="infinity"
            )
        if method == "GET" and path.startswith(ENCOUNTER):
            encounter_id = path.removeprefix(ENCOUNTER)
            return await database.value("writes.get_encounter", encounter_id=encounter_id, show_deleted=False)
        return None

    async def bare(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        document = await answer(scope["method"], scope["path"], receive)
        await send(start(404 if document is None else 200))
        await send({"type": "http.response.body", "body": document or b"null"})

    return bare


if __name__ == "__main__":
    http_server("bare_app:app", load_settings(), workers=default_workers()).serve()
