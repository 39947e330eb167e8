"""HEAD on every GET route (the GET's status and headers, no body), and one Allow header per route,
the same on OPTIONS and on 405 — against `encounters-service serve` (granian, as production runs
it), on a seeded database so that by-id routes meet real rows."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from encounters_service.app import create_app
from tests.helpers import TEST_SETTINGS
from tests.reliability.conftest import SYSTEM, assert_plain_error, seed
from tests.reliability.raw_http import served, served_database  # noqa: F401 (fixtures)

ROUTES = {
    route.path_format: frozenset(route.methods) for route in create_app(TEST_SETTINGS, "postgresql://unused").routes
}
GET_ROUTES = sorted(path for path, methods in ROUTES.items() if "GET" in methods)
VARYING = {"date", "x-request-id"}  # differ between any two answers
CHANGING = {"/metrics"}  # its counters move with every request: two answers differ in length


@pytest.fixture(scope="module")
def http(served, served_database) -> Iterator[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=served.base_url, headers=SYSTEM, timeout=30) as client:
        documents = seed(client)
        with psycopg.connect(served_database, autocommit=True) as db:  # /healthcheck: no waiting message, no age
            db.execute("DELETE FROM encounters.outbox")
        client.urls = {path: url(path, documents) for path in ROUTES}
        yield client


def url(path: str, documents: list[dict]) -> str:
    """`path` with its parameters filled in from the seeded data, and the query a GET needs."""
    encounter = documents[-1]
    values = {
        "encounter_id": encounter["uuid"],
        "history_id": next(entry["uuid"] for document in documents for entry in document["score_system_history"]),
        "version": "1",
        "path": "no-such-page",
        "name": "swagger-ui.css",  # the docs page's assets (api/docs_assets.py)
    }
    filled = re.sub(r"\{(\w+)\}", lambda match: values[match[1]], path)
    query = {
        "/dhos/v2/encounter": f"?patient_id={encounter['patient_uuid']}",
        "/dhos/v2/encounter/latest": f"?patient_id={encounter['patient_uuid']}",
        "/dhos/v2/encounters": "?modified_since=2000-01-01",
    }
    return filled + query.get(path, "")


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_every_get_route_with_its_status_and_headers_and_no_body(http, path):
    got = http.get(http.urls[path])
    head = http.head(http.urls[path])
    varying = VARYING | ({"content-length"} if path in CHANGING else set())
    assert head.status_code == got.status_code
    assert head.content == b""
    assert {k: v for k, v in head.headers.items() if k not in varying} == {
        k: v for k, v in got.headers.items() if k not in varying
    }
    if path not in CHANGING:
        # The bytes as sent: httpx asks for compressed answers and decodes them (got.content).
        assert int(head.headers["content-length"]) == got.num_bytes_downloaded


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_options_and_405_list_the_same_methods_and_every_listed_method_is_answered(http, path):
    options = http.options(http.urls[path])
    assert options.status_code == 204
    allowed = [method.strip() for method in options.headers["allow"].split(",")]
    expected = set(ROUTES[path]) | {"OPTIONS"} | ({"HEAD"} if "GET" in ROUTES[path] else set())
    assert set(allowed) == expected and len(allowed) == len(expected)

    refused = http.request("PUT", http.urls[path], json={})
    assert refused.status_code == 405
    assert refused.headers["allow"] == options.headers["allow"]
    assert_plain_error(405, refused.content)

    for method in set(allowed) - {"OPTIONS"}:
        answer = http.request(method, http.urls[path], **({} if method in ("GET", "HEAD") else {"json": {}}))
        assert answer.status_code != 405, (method, answer.text)
