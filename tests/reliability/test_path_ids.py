"""A path id is a canonical UUID (8-4-4-4-12 hex digits, any case), and a path is spelled as its
route is: anything else answers 404 {"message"} and changes nothing, on every route and method.

Was: the routes' `uuid` converter took whatever Python's UUID() takes (`urn:uuid:…`, `{…}`, no
dashes, dashes anywhere), and Litestar routed `//dhos/v1//encounter/<id>` and a `%2F` inside a
segment as if they were the route's own path.

Requests go over HTTP with http.client, which sends the path bytes exactly as given.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import uuid4

import psycopg
import pytest

from encounters_service.app import create_app
from encounters_service.db import connect_sync
from tests.api.test_encounter_writes import ENCOUNTERS, create_body, snapshot
from tests.conftest import served_in_thread, template_clone
from tests.helpers import TEST_SETTINGS, as_app
from tests.reliability.conftest import OPENAPI, SYSTEM, error_keys


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    conninfo: str
    ids: dict[str, str]  # path parameter → an id the database holds
    patient: str = ""  # the patient of that encounter


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict | list | None


def request(server: Server, method: str, path: str, body: object = None, headers: dict | None = None) -> Answer:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        content = None if body is None else json.dumps(body)
        sent = {**SYSTEM, "Content-Type": "application/json"} if headers is None else headers
        connection.request(method, path, body=content, headers=sent)
        response = connection.getresponse()
        data = response.read()
        return Answer(response.status, json.loads(data) if data else None)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def server(pg_server, template_conninfo) -> Iterator[Server]:
    with (
        template_clone(pg_server) as conninfo,
        served_in_thread(create_app(TEST_SETTINGS, as_app(conninfo))) as base_url,
    ):
        address = urlsplit(base_url)
        bare = Server(address.hostname, address.port, conninfo, {})
        patient = str(uuid4())
        encounter = request(bare, "POST", ENCOUNTERS, create_body(patient_uuid=patient)).body["uuid"]
        changed = request(bare, "PATCH", f"/dhos/v1/encounter/{encounter}", {"score_system": "meows"}).body
        history = changed["score_system_history"][0]["uuid"]
        moved = request(bare, "POST", ENCOUNTERS, create_body()).body
        merge = {**BODIES[("POST", "/dhos/v1/encounter/merge")], "child_record_uuid": moved["patient_record_uuid"]}
        assert request(bare, "POST", "/dhos/v1/encounter/merge", merge).body == {"total": 1}
        ids = {"encounter_id": encounter, "history_id": history, "version": "1"}
        yield Server(bare.host, bare.port, conninfo, ids, patient)


@pytest.fixture(scope="module")
def db(server: Server) -> Iterator[psycopg.Connection]:
    with connect_sync(server.conninfo, autocommit=True) as conn:
        yield conn


# Every operation of the document, with a body it accepts.
BODIES = {
    ("PATCH", "/dhos/v1/encounter/{encounter_id}"): {"encounter_type": "INPATIENT"},
    ("DELETE", "/dhos/v1/encounter/{encounter_id}"): {"child_of_encounter_uuid": str(uuid4())},
    ("PATCH", "/dhos/v1/score_system_history/{history_id}"): {"changed_time": "2018-01-01T00:00:00.000Z"},
    ("POST", "/dhos/v1/encounter/merge"): {
        name: str(uuid4())
        for name in ("child_record_uuid", "parent_record_uuid", "parent_patient_uuid", "message_uuid")
    },
}
# The merge the server fixture makes (it moves one encounter); undoing it again answers {"total": 0}, a 200 too.
BODIES[("POST", "/dhos/v1/encounter/merge/undo")] = {
    "message_uuid": BODIES[("POST", "/dhos/v1/encounter/merge")]["message_uuid"]
}
OPERATIONS = [(method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item]
WITH_ID = [(method, path) for method, path in OPERATIONS if "{" in path]


def body_of(method: str, path: str) -> object:
    if (method, path) in BODIES:
        return BODIES[(method, path)]
    if path.startswith("/fhir/"):  # POST _search: its (optional) form, none here
        return None
    if method == "POST":
        return create_body() if path == ENCOUNTERS else [str(uuid4())]
    return None


def filled(server: Server, path: str, id_text=lambda canonical: canonical) -> str:
    for name, canonical in server.ids.items():
        path = path.replace("{" + name + "}", id_text(canonical))
    return path


def query_of(server: Server, method: str, path: str) -> str:
    """The query a GET route needs to answer 200."""
    if method == "GET" and path in (ENCOUNTERS, "/dhos/v2/encounter/latest"):
        return f"?patient_id={server.patient}"
    return "?modified_since=2018-01-01" if path == "/dhos/v2/encounters" else ""


# Spellings of a canonical uuid (lowercase, as the database gives it) that are not canonical.
NOT_CANONICAL = {
    "urn": lambda id_: f"urn:uuid:{id_}",
    "braces": lambda id_: "{" + id_ + "}",
    "no dashes": lambda id_: id_.replace("-", ""),
    "regrouped dashes": lambda id_: "-".join(id_.replace("-", "")[i : i + 4] for i in range(0, 32, 4)),
    "percent-encoded dash": lambda id_: id_.replace("-", "%2D", 1),
    "percent-encoded digit": lambda id_: f"%{ord(id_[0]):02X}{id_[1:]}",
    "one digit short": lambda id_: id_[:-1],
    "one digit more": lambda id_: id_ + "0",
    "not hex": lambda id_: "g" + id_[1:],
    "trailing slash": lambda id_: id_ + "/",
}
CANONICAL = {"lowercase": str.lower, "uppercase": str.upper, "mixed case": lambda id_: id_[:18].upper() + id_[18:]}


@pytest.mark.parametrize("spelling", CANONICAL)
@pytest.mark.parametrize(("method", "path"), WITH_ID)
def test_a_canonical_uuid_in_any_case_names_the_id(server, method, path, spelling):
    answer = request(server, method, filled(server, path, CANONICAL[spelling]), body_of(method, path))
    assert answer.status == 200, answer


@pytest.mark.parametrize("spelling", NOT_CANONICAL)
@pytest.mark.parametrize(("method", "path"), WITH_ID)
def test_a_path_id_that_is_not_a_canonical_uuid_is_404_and_changes_nothing(server, db, method, path, spelling):
    before = snapshot(db)
    answer = request(server, method, filled(server, path, NOT_CANONICAL[spelling]), body_of(method, path))
    assert answer.status == 404, answer
    assert set(answer.body) == error_keys(path)
    assert snapshot(db) == before


def _respelled(path: str) -> dict[str, str]:
    """The path with its slashes doubled or percent-encoded."""
    inner = path.rindex("/")
    return {
        "doubled slashes": "/" + path.replace("/dhos/v1/", "/dhos/v1//").replace("/dhos/v2/", "/dhos/v2//"),
        "an empty segment": path[:inner] + "//" + path[inner + 1 :],
        "an encoded slash": path[:inner] + "%2F" + path[inner + 1 :] if inner else path + "%2F",
        "an encoded lowercase slash": path[:inner] + "%2f" + path[inner + 1 :] if inner else path + "%2f",
        "a trailing slash": path + "/",
    }


RESPELLED = [(method, path, how) for method, path in OPERATIONS for how in _respelled(path)]


@pytest.mark.parametrize(("method", "path", "how"), RESPELLED, ids=[f"{m} {p} {h}" for m, p, h in RESPELLED])
def test_a_path_with_doubled_or_encoded_slashes_is_404_and_changes_nothing(server, db, method, path, how):
    query = query_of(server, method, path)
    canonical = request(server, method, filled(server, path) + query, body_of(method, path))
    assert canonical.status == 200, canonical  # the route answers its own spelling
    before = snapshot(db)
    answer = request(server, method, _respelled(filled(server, path))[how] + query, body_of(method, path))
    assert answer.status == 404, answer
    assert set(answer.body) in ({"message"}, error_keys(path))  # //fhir/… is no /fhir path
    assert snapshot(db) == before


@pytest.mark.parametrize(("method", "path"), WITH_ID)
def test_a_bad_path_id_is_404_before_the_token_is_looked_at(server, method, path):
    """As for an unknown path: no route, so nothing to authorise."""
    answer = request(server, method, filled(server, path, NOT_CANONICAL["urn"]), body_of(method, path), headers={})
    assert answer.status == 404, answer
