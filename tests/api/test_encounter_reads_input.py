"""What the read routes accept and refuse: datetimes, flags, unknown parameters, body lists, tokens.

These tests only read (each arranges its own new patient), so the module shares one database
clone and one app instead of cloning per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest
from litestar.testing import TestClient

from encounters_service.api.encounter_reads import MAX_LIST_ITEMS
from encounters_service.app import create_app
from encounters_service.auth import WRITE_SCOPE
from encounters_service.db import connect_sync
from tests.conftest import TEMPLATE, create_database, drop_database
from tests.helpers import TEST_SETTINGS, as_app, auth
from tests.queries.arrange import WARD_A, insert_encounter

PATIENT = str(uuid4())
LIST_ROUTES = [
    "/dhos/v2/encounter/latest",
    "/dhos/v1/encounter/locations",
    "/dhos/v1/encounter/patients",
    "/dhos/v1/encounter/locations/patient_count",
]
# (path, query) of a valid GET to each read route, and the query parameter holding a datetime.
GET_ROUTES = [
    (f"/dhos/v1/encounter/{PATIENT}/children", {}),
    ("/dhos/v2/encounter", {"patient_id": PATIENT}),
    ("/dhos/v2/encounters", {"modified_since": "2020-01-01"}),
    ("/dhos/v2/encounter/latest", {"patient_id": PATIENT}),
]
POST_ROUTES = [("POST", path, {}) for path in LIST_ROUTES]
OPEN_AS_OF_ROUTES = [
    ("GET", "/dhos/v2/encounter", {"patient_id": PATIENT}),
    ("GET", "/dhos/v2/encounter/latest", {"patient_id": PATIENT}),
    *POST_ROUTES,
]


@pytest.fixture(scope="module")
def module_database(pg_server, template_conninfo) -> Iterator[str]:
    name = f"reads_input_{uuid4().hex}"
    yield create_database(pg_server, name, template=TEMPLATE)
    drop_database(pg_server, name)


@pytest.fixture(scope="module")
def client(module_database: str) -> Iterator[TestClient]:
    with TestClient(create_app(TEST_SETTINGS, as_app(module_database))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def db(module_database: str) -> Iterator[psycopg.Connection]:
    with connect_sync(module_database, autocommit=True) as conn:
        yield conn


def call(client, method: str, path: str, query: dict, headers: dict | None = None):
    body = {"json": [str(WARD_A)]} if method == "POST" else {}
    return client.request(method, path, params=query, headers=auth() if headers is None else headers, **body)


def message_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["message"]


@pytest.mark.parametrize(
    "instant",
    [
        "2020-01-10T12:00:00Z",
        "2020-01-10T12:00:00.000Z",
        "2020-01-10T12:00:00.5Z",
        "2020-01-10T13:00:00+01:00",
        "2020-01-10T13:00:00.123456+01:00",
        "2020-01-10T07:00:00-05:00",
        "2020-01-10T13:00:00 01:00",  # an unencoded '+' arrives as a space
    ],
)
def test_open_as_of_accepts_iso_8601_instants_with_an_offset(client, db, instant):
    patient = uuid4()
    encounter = insert_encounter(db, patient_uuid=patient, discharged_at="2020-01-10T12:00:01Z")
    latest = client.get(
        "/dhos/v2/encounter/latest", params={"patient_id": str(patient), "open_as_of": instant}, headers=auth()
    )
    assert latest.status_code == 200, latest.text
    assert latest.json()["uuid"] == str(encounter)


@pytest.mark.parametrize("bad", ["yesterday", "2020-01-10", "2020-01-10T12:00:00", "2020-13-10T12:00:00Z", ""])
@pytest.mark.parametrize(("method", "path", "query"), OPEN_AS_OF_ROUTES)
def test_open_as_of_must_be_an_instant_with_an_offset(client, method, path, query, bad):
    assert "open_as_of" in message_of(call(client, method, path, {**query, "open_as_of": bad}), 400)


@pytest.mark.parametrize("bad", ["yesterday", "2020-01-10T12:00:00", "2020-02-30", ""])
def test_modified_since_must_be_a_date_or_an_instant_with_an_offset(client, bad):
    response = client.get("/dhos/v2/encounters", params={"modified_since": bad}, headers=auth())
    assert "modified_since" in message_of(response, 400)


@pytest.mark.parametrize(
    ("query", "needs"),
    [
        ({}, "patient_id or epr_encounter_id"),
        ({"epr_encounter_id": ""}, "patient_id or epr_encounter_id"),
        ({"epr_encounter_id": "E1", "open_as_of": "2020-01-01T00:00:00Z"}, "open_as_of needs patient_id"),
        ({"patient_id": "not-a-uuid"}, "patient_id"),
    ],
)
def test_list_needs_a_patient_or_an_epr_id(client, query, needs):
    assert needs in message_of(client.get("/dhos/v2/encounter", params=query, headers=auth()), 400)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/dhos/v2/encounters", {}),
        ("/dhos/v2/encounter/latest", {}),
        ("/dhos/v2/encounter/latest", {"patient_id": "x"}),
    ],
)
def test_required_query_parameters(client, path, query):
    message_of(client.get(path, params=query, headers=auth()), 400)


@pytest.mark.parametrize(("path", "query"), GET_ROUTES)
def test_get_routes_refuse_unknown_parameters_bad_flags_and_a_body(client, path, query):
    assert "sort" in message_of(client.get(path, params={**query, "sort": "asc"}, headers=auth()), 400)
    flag = "show_deleted" if "children" in path or "encounters" in path else "compact"
    assert message_of(client.get(path, params={**query, flag: "maybe"}, headers=auth()), 400)
    for value in ("true", "false", "True", "False"):  # Python clients send True/False
        assert client.get(path, params={**query, flag: value}, headers=auth()).status_code in (200, 404)
    message_of(client.request("GET", path, params=query, json=[PATIENT], headers=auth()), 400)


@pytest.mark.parametrize("path", LIST_ROUTES)
def test_list_bodies_are_json_arrays_of_at_most_10000_uuids(client, path):
    def send(**body):
        return client.post(path, headers=auth() | {"Content-Type": "application/json"}, **body)

    assert str(MAX_LIST_ITEMS) in message_of(send(json=[str(uuid4())] * (MAX_LIST_ITEMS + 1)), 400)
    assert send(json=[str(uuid4())] * MAX_LIST_ITEMS).status_code == 200
    for bad in ([1], ["not-a-uuid"], {"ids": []}, None):
        message_of(send(json=bad), 400)
    message_of(send(content=b"[not json"), 400)
    message_of(send(), 400)
    assert "sort" in message_of(client.post(path, params={"sort": "x"}, json=[], headers=auth()), 400)


@pytest.mark.parametrize(
    ("method", "path", "query"), [("GET", path, query) for path, query in GET_ROUTES] + POST_ROUTES
)
def test_read_routes_need_a_token_with_the_read_scope(client, method, path, query):
    message_of(call(client, method, path, query, headers={}), 401)
    message_of(call(client, method, path, query, headers=auth(WRITE_SCOPE)), 403)
