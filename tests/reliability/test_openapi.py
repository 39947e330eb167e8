"""The OpenAPI document describes every route precisely, and real answers of every form match it.

Fuzzing (test_fuzz.py) checks what schemathesis happens to generate; here each response form —
full, compact, expanded, with children, every error — is produced on purpose and validated.
"""

from __future__ import annotations

import itertools
import uuid

import httpx
import pytest
import schemathesis

from encounters_service.api import fhir
from encounters_service.api.read_routing import WRITTEN_POSITION, standby_routes
from encounters_service.auth import READ_SCOPE
from tests.api.test_encounter_writes import ENCOUNTERS, create_body
from tests.helpers import auth
from tests.reliability.conftest import OPENAPI, SYSTEM, assert_plain_error, error_keys

SCHEMA = schemathesis.openapi.from_dict(OPENAPI)
OPERATIONS = [
    (path, method, operation) for path, item in OPENAPI["paths"].items() for method, operation in item.items()
]
FLAGS = ("compact", "expanded", "show_deleted", "show_children")


def test_the_served_document_is_the_one_tested(seeded_server):
    assert httpx.get(f"{seeded_server.base_url}/schema/openapi.json").json() == OPENAPI


@pytest.mark.parametrize(
    ("path", "method", "operation"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m, _ in OPERATIONS]
)
def test_every_route_documents_its_answers_body_and_security(path, method, operation):
    fhir = path.startswith("/fhir/")  # FHIR JSON, errors as OperationOutcome, a form for _search
    media_type = "application/fhir+json" if fhir else "application/json"
    success = operation["responses"]["200"]["content"][media_type]["schema"]
    assert success, "a success answer without a schema"
    for status, answer in operation["responses"].items():
        if status == "304":  # Not Modified: no body, the ETag
            assert "content" not in answer and set(answer["headers"]) == {"ETag"}
        elif status != "200":
            assert answer["content"][media_type]["schema"]["required"] == sorted(error_keys(path), reverse=True)
    secured = path.startswith("/dhos/") or (fhir and path != "/fhir/R4/metadata")
    assert operation.get("security") == ([{"bearer": []}] if secured else None)
    if fhir:  # POST _search's form is described in words (api/fhir.py fhir_documented)
        assert "requestBody" not in operation
    elif method in ("post", "patch", "delete"):
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body.get("additionalProperties") is False or body["type"] == "array"
    for parameter in operation.get("parameters", []):
        assert parameter["schema"].get("type") in ("string", "boolean", "integer"), parameter
        assert "null" not in str(parameter["schema"]), parameter


def test_query_parameters_carry_their_types():
    types = {
        parameter["name"]: (parameter["schema"]["type"], parameter["schema"].get("format"))
        for item in OPENAPI["paths"].values()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
    }
    assert types == {
        "encounter_id": ("string", "uuid"),
        "history_id": ("string", "uuid"),
        "patient_id": ("string", "uuid"),
        "epr_encounter_id": ("string", None),
        "open_as_of": ("string", "date-time"),
        "modified_since": ("string", None),  # anyOf date, date-time
        "cursor": ("string", None),
        "If-Match": ("string", None),
        "If-None-Match": ("string", None),
        "limit": ("integer", None),
        "version": ("integer", None),
        **{flag: ("boolean", None) for flag in FLAGS},
        "X-Encounters-LSN": ("string", None),  # a header: a read's own write (docs/deploying.md)
        **{name: ("string", None) for name in fhir.SEARCH_NAMES},  # FHIR's own syntax, decoded by api/fhir.py
    }


def test_every_form_of_every_answer_matches_the_document(seeded_server):
    parent = next(document for document in seeded_server.documents if document["score_system_history"])
    patient, location = parent["patient_uuid"], parent["location_uuid"]
    child = next(document for document in seeded_server.documents if document.get("child_of_encounter_uuid"))
    flag_sets = [
        dict(zip(FLAGS, values, strict=True)) for values in itertools.product((True, False), repeat=len(FLAGS))
    ]
    by_id = [f"/dhos/v1/encounter/{encounter}" for encounter in seeded_server.encounters]

    with httpx.Client(base_url=seeded_server.base_url, headers=SYSTEM) as http:
        answers = [http.get(path) for path in ("/running", "/version", "/healthcheck")]
        answers += [http.get(ENCOUNTERS, params={"patient_id": patient, **flags}) for flags in flag_sets]
        answers += [
            http.get("/dhos/v2/encounters", params={"modified_since": "2000-01-01", **flags}) for flags in flag_sets
        ]
        answers += [http.get(ENCOUNTERS, params={"epr_encounter_id": "E-1", "show_children": True})]
        changes = http.get("/dhos/v2/encounters/changes", params={"limit": 2})
        answers += [changes, http.get("/dhos/v2/encounters/changes", params={"cursor": changes.json()["cursor"]})]
        for compact in (True, False):
            as_of = {"compact": compact, "open_as_of": "2018-01-01T12:00:00Z"}
            answers += [
                http.get(ENCOUNTERS, params={"patient_id": patient, "expanded": True, **as_of}),
                http.get("/dhos/v2/encounter/latest", params={"patient_id": patient, "compact": compact}),
                http.get("/dhos/v2/encounter/latest", params={"patient_id": patient, **as_of}),
                http.post("/dhos/v2/encounter/latest", params={"compact": compact}, json=[patient, str(uuid.uuid4())]),
                http.post("/dhos/v1/encounter/locations", params={"compact": compact}, json=[location]),
                http.post("/dhos/v1/encounter/patients", params=as_of, json=[patient]),
            ]
        answers += [http.post("/dhos/v1/encounter/locations/patient_count", json=[location])]
        answers += [http.get(path, params={"show_deleted": True}) for path in by_id]
        answers += [http.get(f"{path}/merge_history") for path in by_id]
        answers += [http.get(f"{path}/history") for path in by_id] + [http.get(f"{by_id[0]}/history/1")]
        answers += [http.get(f"{by_id[0]}/children", params={"show_deleted": True})]
        new = http.post(ENCOUNTERS, json=create_body(spo2_scale=2))
        answers += [new, http.patch(f"/dhos/v1/encounter/{new.json()['uuid']}", json={"score_system": "other"})]
        history = http.get(f"/dhos/v1/encounter/{new.json()['uuid']}").json()["score_system_history"][0]["uuid"]
        answers += [
            http.patch(f"/dhos/v1/score_system_history/{history}", json={"changed_time": "2018-01-01T00:00:00Z"}),
            http.request(
                "DELETE",
                f"/dhos/v1/encounter/{child['uuid']}",
                json={"child_of_encounter_uuid": child["child_of_encounter_uuid"]},
            ),
            http.post(
                "/dhos/v1/encounter/merge",
                json={
                    name: str(uuid.uuid4())
                    for name in ("child_record_uuid", "parent_record_uuid", "parent_patient_uuid", "message_uuid")
                },
            ),
        ]
        successes = len(answers)
        answers += [
            http.get(ENCOUNTERS),  # 400
            http.get(by_id[0], headers={"Authorization": "Bearer nonsense"}),  # 401
            http.get(by_id[0], headers=auth(READ_SCOPE.replace("read", "write"))),  # 403
            http.get(f"/dhos/v1/encounter/{uuid.uuid4()}"),  # 404
            http.post(ENCOUNTERS, json=create_body(epr_encounter_id="E-2")),  # 409
            http.post(ENCOUNTERS, json=create_body(child_of_encounter_uuid=str(uuid.uuid4()))),  # 422
            http.post(
                "/dhos/v1/encounter/patients",
                content=b"[" * (1024 * 1024 + 1),
                headers={"Content-Type": "application/json"},
            ),  # 413
            http.get("/running", params={"x": "y" * 5000}),  # 414
            http.post("/dhos/v1/encounter/patients", content=b"[]", headers={"Content-Type": "text/plain"}),  # 415
        ]

    assert [answer.status_code for answer in answers[:successes]] == [200] * successes, [
        (answer.request.url, answer.text) for answer in answers[:successes] if answer.status_code != 200
    ]
    assert [answer.status_code for answer in answers[successes:]] == [400, 401, 403, 404, 409, 422, 413, 414, 415]
    for answer in answers:
        operation = SCHEMA.find_operation_by_path(answer.request.method, answer.request.url.path)
        operation.validate_response(answer)
        if answer.status_code >= 400:
            assert_plain_error(answer.status_code, answer.content)


def test_the_written_position_header_is_documented_where_it_applies():
    """Answered by every write (with standbys), taken by every read that may run on a standby."""
    operations = [
        (f"{method.upper()} {path}", operation)
        for path, item in OPENAPI["paths"].items()
        for method, operation in item.items()
    ]
    answered = {
        route for route, operation in operations if WRITTEN_POSITION in operation["responses"]["200"].get("headers", {})
    }
    taken = {
        route
        for route, operation in operations
        if any(parameter["name"] == WRITTEN_POSITION for parameter in operation.get("parameters", []))
    }
    assert taken == standby_routes("all")
    assert answered == {
        "POST /dhos/v2/encounter",
        "PATCH /dhos/v1/encounter/{encounter_id}",
        "DELETE /dhos/v1/encounter/{encounter_id}",
        "PATCH /dhos/v1/score_system_history/{history_id}",
        "POST /dhos/v1/encounter/merge",
        "POST /dhos/v1/encounter/merge/undo",
    }
