"""Limits on what one request may ask: body size (413), list length (400), query-string length
(414), and time in PostgreSQL (STATEMENT_TIMEOUT_MS: 503, and the connection goes back to the pool)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import psycopg
import pytest
from litestar.testing import TestClient

from encounters_service.api.common import MAX_QUERY_BYTES
from encounters_service.app import MAX_BODY_BYTES, create_app
from encounters_service.db import APPLICATION_NAME, session_options
from encounters_service.models import MAX_LIST_ITEMS
from encounters_service.settings import Settings, load_settings
from tests.api.test_encounter_writes import ENCOUNTERS, create, create_body, encounter_url, new_uuid, snapshot
from tests.api.test_errors import assert_error
from tests.helpers import TEST_SETTINGS, as_app, auth
from tests.reliability.conftest import OPENAPI, SYSTEM

SOME_ID = "00000000-0000-4000-8000-000000000000"  # fixed, so test ids repeat
BODIES = {  # the routes with a JSON body (POST /fhir/R4/Encounter/_search takes a form: tests/api/test_fhir.py)
    (method.upper(), path.format(encounter_id=SOME_ID, history_id=SOME_ID)): operation["requestBody"]
    for path, item in OPENAPI["paths"].items()
    for method, operation in item.items()
    if "application/json" in operation.get("requestBody", {}).get("content", {})
}
BODY_ROUTES = list(BODIES)
LIST_ROUTES = [
    route for route, body in BODIES.items() if body["content"]["application/json"]["schema"]["type"] == "array"
]
STATEMENT_TIMEOUT_MS = 300


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_a_body_over_1_mib_is_413(client, method, path):
    body = b'["' + b"x" * MAX_BODY_BYTES + b'"]'
    assert_error(
        client.request(method, path, content=body, headers=SYSTEM | {"Content-Type": "application/json"}),
        413,
        "Request Entity Too Large",
    )


@pytest.mark.parametrize(("method", "path"), LIST_ROUTES)
def test_a_list_body_over_10000_items_is_400(client, method, path):
    body = json.dumps([new_uuid()] * (MAX_LIST_ITEMS + 1))
    assert_error(
        client.request(method, path, content=body, headers=auth() | {"Content-Type": "application/json"}),
        400,
        f"length <= {MAX_LIST_ITEMS}",
    )
    assert (
        client.request(
            method, path, content=body[: body.rindex(",")] + "]", headers=auth() | {"Content-Type": "application/json"}
        ).status_code
        == 200
    )


def test_a_location_history_over_10000_entries_is_400(client, db):
    body = create_body(location_history=[{"location_uuid": new_uuid()}] * (MAX_LIST_ITEMS + 1))
    assert_error(client.post(ENCOUNTERS, json=body, headers=auth()), 400, f"length <= {MAX_LIST_ITEMS}")
    assert snapshot(db)["encounter"] == []


@pytest.mark.parametrize("path", ["/running", f"/dhos/v1/encounter/{SOME_ID}", ENCOUNTERS])
def test_a_query_string_over_the_limit_is_414(client, path):
    long_query = {"epr_encounter_id": "x" * MAX_QUERY_BYTES}
    assert_error(client.get(path, params=long_query, headers=auth()), 414, f"longer than {MAX_QUERY_BYTES} bytes")


@pytest.fixture
def one_connection_client(fresh_database):
    """The app with a single database connection and a short statement timeout."""
    settings = replace(TEST_SETTINGS, statement_timeout_ms=STATEMENT_TIMEOUT_MS, pool_min_size=1, pool_max_size=1)
    with TestClient(create_app(settings, as_app(fresh_database))) as client:
        yield client


def test_a_statement_over_the_timeout_is_503_and_its_connection_serves_the_next_request(
    one_connection_client, fresh_database, db
):
    client = one_connection_client
    encounter = create(client)
    before = snapshot(db)
    with psycopg.connect(fresh_database) as blocker:  # the update waits for this row lock, in PostgreSQL
        blocker.execute("SELECT FROM encounters.encounter WHERE uuid = %s FOR UPDATE", [encounter["uuid"]])
        started = time.monotonic()
        response = client.patch(encounter_url(encounter["uuid"]), json={"location_uuid": new_uuid()}, headers=auth())
        waited = time.monotonic() - started
    assert_error(response, 503, "statement timeout")
    assert STATEMENT_TIMEOUT_MS / 1000 <= waited < 2
    assert snapshot(db) == before
    assert client.get(encounter_url(encounter["uuid"]), headers=auth()).status_code == 200
    sessions = db.execute(
        "SELECT state FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
        [APPLICATION_NAME],
    ).fetchall()
    assert sessions == [("idle",)]


def test_statement_timeout_ms_is_configured_from_the_environment():
    settings = load_settings({"STATEMENT_TIMEOUT_MS": "1234"})
    assert (settings.statement_timeout_ms, Settings.statement_timeout_ms) == (1234, 5000)
    assert "-c statement_timeout=1234 " in session_options(settings)
