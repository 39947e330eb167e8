"""What a request body must be: JSON, said so (Content-Type application/json, or a +json type), and
not compressed (Content-Encoding identity, or none). Anything else → 415 with a message, before the
body is read and with nothing written; a bad token is still a 401 first.

415 for a missing Content-Type too, as for text/plain: what the original service (Flask's
request.json) answered, and RFC 9110 8.3 lets a server treat untyped content as
application/octet-stream, which is not JSON."""

from __future__ import annotations

import json

import pytest

from tests.api.test_encounter_writes import ENCOUNTERS, create_body, snapshot
from tests.api.test_errors import assert_error
from tests.reliability.conftest import OPENAPI, SYSTEM
from tests.reliability.test_limits import SOME_ID

BODY_ROUTES = [  # with a JSON body (POST /fhir/R4/Encounter/_search takes a form: tests/api/test_fhir.py)
    (method.upper(), path.format(encounter_id=SOME_ID, history_id=SOME_ID))
    for path, item in OPENAPI["paths"].items()
    for method, operation in item.items()
    if "application/json" in operation.get("requestBody", {}).get("content", {})
]
BODY = json.dumps(create_body()).encode()  # JSON, valid or not for the route: 415 comes first

REFUSED_TYPES = {
    "text/plain": {"Content-Type": "text/plain"},
    "none": {},
    "form": {"Content-Type": "application/x-www-form-urlencoded"},
    "octet-stream": {"Content-Type": "application/octet-stream"},
    "json as a parameter": {"Content-Type": "text/plain; type=application/json"},
}
ACCEPTED_TYPES = {
    "application/json": {"Content-Type": "application/json"},
    "with charset, any case": {"Content-Type": "Application/JSON; charset=utf-8"},
    "a +json type": {"Content-Type": "application/merge-patch+json"},
}
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("kind", REFUSED_TYPES)
def test_a_body_not_declared_json_is_415(client, method, path, kind):
    response = client.request(method, path, content=BODY, headers=SYSTEM | REFUSED_TYPES[kind])
    assert_error(response, 415, "must be JSON, sent with Content-Type: application/json")


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd", "deflate", "gzip, identity"])
def test_a_compressed_body_is_415_naming_identity(client, method, path, encoding):
    response = client.request(method, path, content=BODY, headers=SYSTEM | JSON | {"Content-Encoding": encoding})
    assert_error(response, 415, "Content-Encoding: identity")
    assert response.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("kind", ACCEPTED_TYPES)
def test_json_types_and_identity_encoding_reach_the_route(client, method, path, kind):
    headers = SYSTEM | ACCEPTED_TYPES[kind] | {"Content-Encoding": "identity"}
    response = client.request(method, path, content=BODY, headers=headers)
    assert response.status_code != 415 and response.status_code < 500, response.text


def test_a_refused_create_writes_nothing_and_a_bad_token_is_401_first(client, db):
    before = snapshot(db)
    assert_error(client.post(ENCOUNTERS, content=BODY, headers=SYSTEM | {"Content-Type": "text/plain"}), 415, "JSON")
    assert_error(client.post(ENCOUNTERS, content=BODY, headers=SYSTEM | JSON | {"Content-Encoding": "gzip"}), 415, "")
    assert snapshot(db) == before
    bad_token = {"Authorization": "Bearer nonsense", "Content-Type": "text/plain"}
    assert client.post(ENCOUNTERS, content=BODY, headers=bad_token).status_code == 401


def test_requests_without_a_body_need_no_content_type(client):
    assert client.delete(f"/dhos/v1/encounter/{SOME_ID}", headers=SYSTEM).status_code != 415
    assert_error(client.post(ENCOUNTERS, headers=SYSTEM), 400, "a JSON request body is required")
