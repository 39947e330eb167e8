"""A query parameter given twice is refused (400 naming it) on every route that reads query
parameters, whatever the two values: was "last one wins", so `?patient_id=not-a-uuid&patient_id=<uuid>`
answered for the second. Create and merge ignore their query parameters entirely (SPEC), repeated ones too.

The routes and their parameters come from the OpenAPI document, so a new parameter is covered.
The /fhir routes follow FHIR instead (a repeated search parameter is AND, a repeated _count or
_sort a 400): tests/api/test_fhir.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
from litestar.testing import TestClient

from encounters_service import cursors
from encounters_service.app import create_app
from tests.api.test_encounter_writes import ENCOUNTERS, create_body
from tests.conftest import template_clone
from tests.helpers import TEST_SETTINGS, as_app
from tests.reliability.conftest import OPENAPI, SYSTEM

# A valid value of each query parameter the routes read.
VALID = {
    "patient_id": str(uuid4()),
    "epr_encounter_id": "E-1",
    "open_as_of": "2018-01-01T00:00:00.000Z",
    "modified_since": "2018-01-01",
    "limit": "10",
    "cursor": cursors.encode(TEST_SETTINGS.hs_key, cursors.START),
    **{flag: "true" for flag in ("compact", "expanded", "show_deleted", "show_children")},
}
IGNORING = {("post", "/dhos/v2/encounter"), ("post", "/dhos/v1/encounter/merge")}  # create, merge
READING = [
    (method, path, [parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "query"])
    for path, item in OPENAPI["paths"].items()
    for method, operation in item.items()
    if (method, path) not in IGNORING and not path.startswith("/fhir/")
]
CASES = [(method, path, name, names) for method, path, names in READING for name in names]


@pytest.fixture(scope="module")
def client(pg_server, template_conninfo) -> Iterator[TestClient]:
    with template_clone(pg_server) as conninfo, TestClient(create_app(TEST_SETTINGS, as_app(conninfo))) as test_client:
        test_client.headers.update(SYSTEM)
        yield test_client


def send(client, method: str, path: str, query: list[tuple[str, str]]):
    url = path.replace("{encounter_id}", str(uuid4())).replace("{history_id}", str(uuid4()))
    body = {"json": [str(uuid4())]} if method == "post" else {}
    return client.request(method.upper(), url, params=query, **body)


def test_the_routes_that_read_query_parameters_are_all_covered():
    assert {(method, path) for method, path, *_ in CASES} == {
        ("get", "/dhos/v1/encounter/{encounter_id}/children"),
        ("get", "/dhos/v1/encounter/{encounter_id}"),
        ("get", "/dhos/v2/encounter"),
        ("get", "/dhos/v2/encounters"),
        ("get", "/dhos/v2/encounters/changes"),
        ("get", "/dhos/v2/encounter/latest"),
        ("post", "/dhos/v2/encounter/latest"),
        ("post", "/dhos/v1/encounter/locations"),
        ("post", "/dhos/v1/encounter/patients"),
        ("post", "/dhos/v1/encounter/locations/patient_count"),
    }


@pytest.mark.parametrize(("method", "path", "name", "names"), CASES, ids=[f"{m} {p} {n}" for m, p, n, _ in CASES])
@pytest.mark.parametrize("first", ["not-a-uuid", "same"])
def test_a_repeated_query_parameter_is_400_naming_it(client, method, path, name, names, first):
    query = [(each, VALID[each]) for each in names]
    assert send(client, method, path, query).status_code in (200, 404)  # the query alone is fine
    repeated = [(name, VALID[name] if first == "same" else first), *query]
    response = send(client, method, path, repeated)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message"}
    assert f"'{name}'" in response.json()["message"] and "more than once" in response.json()["message"]


def test_a_name_repeated_in_another_spelling_is_still_repeated(client):
    response = client.get(f"/dhos/v2/encounter?patient%5Fid=not-a-uuid&patient_id={uuid4()}")
    assert response.status_code == 400, response.text
    assert "'patient_id'" in response.json()["message"]


def test_create_and_merge_ignore_repeated_query_parameters(client):
    repeated = [("patient_id", "not-a-uuid"), ("patient_id", str(uuid4())), ("x", "1"), ("x", "2")]
    assert client.post(ENCOUNTERS, params=repeated, json=create_body()).status_code == 200
    merge = {name: str(uuid4()) for name in ("child_record_uuid", "parent_record_uuid", "parent_patient_uuid")}
    response = client.post("/dhos/v1/encounter/merge", params=repeated, json={**merge, "message_uuid": str(uuid4())})
    assert response.json() == {"total": 0}
