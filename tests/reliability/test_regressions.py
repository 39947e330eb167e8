"""One test per failure that fuzzing (test_fuzz.py, and longer runs with other seeds) or probing
hostile input found. Each names what the service used to answer."""

from __future__ import annotations

import pytest

from tests.api.test_encounter_writes import ENCOUNTERS, create_body, new_uuid, snapshot
from tests.api.test_errors import app_client, assert_error  # noqa: F401 (a fixture)
from tests.helpers import auth

LIST_ROUTES = [
    "/dhos/v2/encounter/latest",
    "/dhos/v1/encounter/locations",
    "/dhos/v1/encounter/patients",
    "/dhos/v1/encounter/locations/patient_count",
]


@pytest.mark.parametrize(
    "query",
    [
        {"epr_encounter_id": "\x00ì§"},  # was 500: psycopg refuses NUL in text parameters
        {"patient_id": new_uuid(), "epr_encounter_id": "a\x00b"},
    ],
)
def test_nul_in_a_query_value_is_400_naming_the_parameter(client, query):
    response = client.get(ENCOUNTERS, params=query, headers=auth())
    assert_error(response, 400, "query parameter 'epr_encounter_id' must not contain NUL")


@pytest.mark.parametrize("path", LIST_ROUTES)
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_a_deeply_nested_list_body_is_400(client, path, depth):
    """Was 500: Litestar's JSON decoding recursed until RecursionError."""
    response = client.post(
        path, content=b"[" * depth + b"]" * depth, headers=auth() | {"Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid request body")


@pytest.mark.parametrize("path", LIST_ROUTES)
def test_list_bodies_are_decoded_strictly(client, path):
    assert_error(client.post(path, json=[None], headers=auth()), 400, "invalid request body")
    assert_error(
        client.post(path, content=b"[not json", headers=auth() | {"Content-Type": "application/json"}),
        400,
        "not valid JSON",
    )


@pytest.mark.parametrize("method", ["post", "patch"])
def test_an_epr_id_too_long_for_its_index_is_400_and_stores_nothing(client, db, method):
    """Was 503 ("database unavailable"): PostgreSQL's index row size limit (SQLSTATE 54000)."""
    encounter = client.post(ENCOUNTERS, json=create_body(), headers=auth()).json()
    before = snapshot(db)
    too_long = "x" * 256 + new_uuid() * 100
    if method == "post":
        response = client.post(ENCOUNTERS, json=create_body(epr_encounter_id=too_long), headers=auth())
    else:
        response = client.patch(
            f"/dhos/v1/encounter/{encounter['uuid']}", json={"epr_encounter_id": too_long}, headers=auth()
        )
    assert_error(response, 400, "epr_encounter_id")
    assert snapshot(db) == before
    assert client.post(ENCOUNTERS, json=create_body(epr_encounter_id="x" * 255), headers=auth()).status_code == 200


def test_a_database_limit_is_400_without_naming_internals(app_client):  # noqa: F811 (the fixture)
    response = app_client.get("/test/raise/54000", headers=auth())
    assert_error(response, 400, "too large to store")
    assert "raised" not in response.text
