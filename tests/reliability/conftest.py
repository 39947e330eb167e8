"""A served app on its own database, seeded with encounters that use every part of the data model
(histories, a child, discharged, deleted, merged), for the fuzzing and OpenAPI tests."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from encounters_service.app import create_app
from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.api.test_encounter_writes import ENCOUNTERS, create_body, encounter_url
from tests.conftest import served_in_thread, template_clone
from tests.helpers import TEST_SETTINGS, as_app, auth

# A system caller that may change score systems: no route refuses it for lack of a claim.
SYSTEM = auth(READ_SCOPE, WRITE_SCOPE, system_id="reliability-tests", can_edit_ews=True)
# What an error body must never show: SQL, stack traces, source paths, driver or schema names.
INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|/work/|site-packages|psycopg|litestar|\b(SELECT|INSERT|UPDATE|DELETE) |"
    r"\bFROM \w|\bWHERE\b|encounters_api|encounters\.\w|CONTEXT:|LINE \d|SQLSTATE|_key\b|_idx\b"
)
# The document the app serves at /schema/openapi.json (building it needs no database).
OPENAPI = create_app(TEST_SETTINGS, "postgresql://unused").openapi_schema.to_schema()


@dataclass(frozen=True)
class Seeded:
    base_url: str
    conninfo: str
    documents: tuple[dict, ...]  # the seeded encounters, expanded full form, newest change first
    encounters: tuple[str, ...]
    histories: tuple[str, ...]  # score system history entries
    uuids: tuple[str, ...]  # every uuid the seeded data holds: also patients, records, locations, products…


@pytest.fixture(scope="module")
def seeded_server(pg_server, template_conninfo) -> Iterator[Seeded]:
    with (
        template_clone(pg_server) as conninfo,
        served_in_thread(create_app(TEST_SETTINGS, as_app(conninfo))) as base_url,
        httpx.Client(base_url=base_url, headers=SYSTEM) as http,
    ):
        everything = seed(http)
        yield Seeded(
            base_url,
            conninfo,
            documents=tuple(everything),
            encounters=tuple(encounter["uuid"] for encounter in everything),
            histories=tuple(entry["uuid"] for encounter in everything for entry in encounter["score_system_history"]),
            uuids=tuple(sorted(set(_uuids_in(everything)))),
        )


def seed(http: httpx.Client) -> list[dict]:
    """Encounters with every part of the model filled in; returns them all in the expanded full form."""

    def ok(response: httpx.Response) -> dict:
        assert response.status_code == 200, response.text
        return response.json()

    patient, record = str(uuid.uuid4()), str(uuid.uuid4())
    parent = ok(http.post(ENCOUNTERS, json=create_body(patient_uuid=patient, patient_record_uuid=record)))
    ok(http.patch(encounter_url(parent["uuid"]), json={"location_uuid": str(uuid.uuid4())}))
    ok(http.patch(encounter_url(parent["uuid"]), json={"spo2_scale": 2, "score_system": "news2"}))
    mine = {"patient_uuid": patient, "patient_record_uuid": record}
    ok(http.post(ENCOUNTERS, json=create_body(child_of_encounter_uuid=parent["uuid"], epr_encounter_id="E-1", **mine)))
    ok(http.post(ENCOUNTERS, json=create_body(discharged_at="2018-01-02T00:00:00Z", epr_encounter_id="E-2", **mine)))
    ok(http.post(ENCOUNTERS, json=create_body(deleted_at="2018-01-03T00:00:00Z")))
    merge = {name: str(uuid.uuid4()) for name in ("parent_record_uuid", "parent_patient_uuid", "message_uuid")}
    ok(http.post("/dhos/v1/encounter/merge", json={"child_record_uuid": record, **merge}))
    flags = {"show_deleted": True, "show_children": True, "expanded": True}
    return ok(http.get("/dhos/v2/encounters", params={"modified_since": "2000-01-01", **flags}))


def _uuids_in(document: object) -> Iterator[str]:
    if isinstance(document, dict):
        for value in document.values():
            yield from _uuids_in(value)
    elif isinstance(document, list):
        for value in document:
            yield from _uuids_in(value)
    elif isinstance(document, str) and _is_uuid(document):
        yield document


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def error_keys(path: str) -> set[str]:
    """The keys of an error body on a route of `path`: {"message"}, or an OperationOutcome's on /fhir."""
    return {"resourceType", "issue"} if path.startswith("/fhir/") else {"message"}


def assert_plain_error(status: int, body: bytes, sent: Iterable[str] = ()) -> None:
    """An error answer is {"message": text} (more keys may follow) that shows no internals; on the
    /fhir routes, an OperationOutcome whose diagnostics are that text. What the request `sent` (a
    header it quotes back, say) is the caller's own text, not an internal."""
    document = json.loads(body)
    if isinstance(document, dict) and document.get("resourceType") == "OperationOutcome":
        OperationOutcome.model_validate(document)
        document = {"message": document["issue"][0]["diagnostics"]}
    assert isinstance(document, dict) and isinstance(document.get("message"), str), (status, body)
    message = document["message"]
    for text in sent:
        message = message.replace(text, "")
    assert not INTERNALS.search(message), (status, document["message"])
