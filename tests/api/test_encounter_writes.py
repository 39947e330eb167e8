"""Encounter writes through HTTP: create and read by id, the shared bad-input rules, and the
helpers the other write test modules use (create, outbox, snapshot)."""

from __future__ import annotations

import json
import uuid

import pytest

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.helpers import FULL_KEYS, ISO_MS, auth

ENCOUNTERS = "/dhos/v2/encounter"
TABLES = ("encounter", "location_history", "score_system_history", "merge_history", "outbox")
DROP = object()  # create_body(field=DROP) leaves the field out


def new_uuid() -> str:
    return str(uuid.uuid4())


def encounter_url(encounter_uuid: str) -> str:
    return f"/dhos/v1/encounter/{encounter_uuid}"


def create_body(**changes: object) -> dict:
    """A valid create body for a new patient; `changes` override fields (DROP removes one)."""
    body = {
        "patient_uuid": new_uuid(),
        "location_uuid": new_uuid(),
        "patient_record_uuid": new_uuid(),
        "dh_product_uuid": new_uuid(),
        "admitted_at": "2018-01-01T08:00:00.000Z",
        "score_system": "news2",
        "encounter_type": "INPATIENT",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not DROP}


def create(client, headers: dict | None = None, **changes: object) -> dict:
    response = client.post(ENCOUNTERS, json=create_body(**changes), headers=auth() if headers is None else headers)
    assert response.status_code == 200, response.text
    return response.json()


def outbox(db) -> list[tuple[str, dict, str | None]]:
    """(routing key, body, encounter uuid) of every recorded event, oldest first."""
    rows = db.execute("SELECT routing_key, body, encounter_uuid FROM encounters.outbox ORDER BY id").fetchall()
    return [(key, json.loads(body), str(about) if about else None) for key, body, about in rows]


def clear_outbox(db) -> None:
    db.execute("DELETE FROM encounters.outbox")


def snapshot(db) -> dict[str, list[str]]:
    """Every row of every table, to show that a failed request left nothing behind."""
    return {
        table: [row for (row,) in db.execute(f"SELECT t::text FROM encounters.{table} AS t ORDER BY 1")]
        for table in TABLES
    }


def assert_error(response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message"}
    for fragment in fragments:
        assert fragment in body["message"], body["message"]


# --- create ---------------------------------------------------------------------------------


def test_create_answers_200_with_the_full_form(client, db):
    body = create_body(epr_encounter_id="EPR-1", discharged_at="2018-01-02T10:30:00.123+01:00")
    response = client.post(ENCOUNTERS, json=body, headers=auth())
    assert response.status_code == 200
    encounter = response.json()
    assert set(encounter) == FULL_KEYS
    assert uuid.UUID(encounter["uuid"])
    assert encounter == {
        "uuid": encounter["uuid"],
        "epr_encounter_id": "EPR-1",
        "encounter_type": "INPATIENT",
        "admitted_at": "2018-01-01T08:00:00.000Z",
        "discharged_at": "2018-01-02T09:30:00.123Z",
        "deleted_at": None,
        "location_uuid": body["location_uuid"],
        "patient_uuid": body["patient_uuid"],
        "patient_record_uuid": body["patient_record_uuid"],
        "score_system": "news2",
        "spo2_scale": 1,
        "dh_product": [{"uuid": body["dh_product_uuid"]}],
        "score_system_history": [],
        "location_history": [],
        "created": encounter["created"],
    }
    assert ISO_MS.match(encounter["created"])
    created_by, modified_by = db.execute(
        "SELECT created_by, modified_by FROM encounters.encounter WHERE uuid = %s", [encounter["uuid"]]
    ).fetchone()
    assert created_by == modified_by == "clinician-1"


def test_create_records_one_encounter_update_event(client, db):
    encounter = create(client)
    assert outbox(db) == [("dhos.DM000007", {"encounter_id": encounter["uuid"]}, encounter["uuid"])]


@pytest.mark.parametrize(
    ("claims", "caller"),
    [
        ({"system_id": "dhos-robot"}, "dhos-robot"),
        ({"device_id": "device-9", "system_id": "dhos-robot"}, "device-9"),
        ({"patient_id": "p-1", "clinician_id": "c-1"}, "p-1"),
        ({"can_edit_ews": True}, "unknown"),
    ],
)
def test_create_records_the_caller_id_from_the_first_present_claim(client, db, claims, caller):
    encounter = create(client, headers=auth(READ_SCOPE, WRITE_SCOPE, **claims))
    assert db.execute(
        "SELECT created_by FROM encounters.encounter WHERE uuid = %s", [encounter["uuid"]]
    ).fetchone() == (caller,)


def test_create_keeps_the_given_location_history_oldest_first(client):
    first, second = new_uuid(), new_uuid()
    history = [
        {"location_uuid": second, "arrived_at": "2018-01-01T10:00:00Z", "departed_at": "2018-01-01T12:00:00Z"},
        {"location_uuid": first, "arrived_at": "2018-01-01T08:00:00Z", "departed_at": "2018-01-01T10:00:00Z"},
    ]
    encounter = create(client, location_history=history)
    entries = encounter["location_history"]
    assert [(e["location_uuid"], e["arrived_at"], e["departed_at"]) for e in entries] == [
        (first, "2018-01-01T08:00:00.000Z", "2018-01-01T10:00:00.000Z"),
        (second, "2018-01-01T10:00:00.000Z", "2018-01-01T12:00:00.000Z"),
    ]
    assert all(set(e) == {"location_uuid", "arrived_at", "departed_at", "created_at"} for e in entries)
    assert all(ISO_MS.match(e["created_at"]) for e in entries)


def test_create_accepts_location_history_entries_without_times(client):
    location = new_uuid()
    encounter = create(client, location_history=[{"location_uuid": location}])
    assert encounter["location_history"][0] | {"created_at": None} == {
        "location_uuid": location,
        "arrived_at": None,
        "departed_at": None,
        "created_at": None,
    }


@pytest.mark.parametrize("empty", [[], None, DROP])
def test_create_without_location_history_has_none(client, empty):
    assert create(client, location_history=empty)["location_history"] == []


@pytest.mark.parametrize("empty", ["", None, DROP])
def test_create_without_epr_id_makes_a_local_encounter(client, empty):
    assert create(client, epr_encounter_id=empty)["epr_encounter_id"] is None


@pytest.mark.parametrize(("given", "stored"), [(2, 2), (1, 1), (None, 1)])
def test_create_with_can_edit_ews_sets_spo2_scale(client, given, stored):
    encounter = create(
        client, headers=auth(READ_SCOPE, WRITE_SCOPE, clinician_id="c", can_edit_ews=True), spo2_scale=given
    )
    assert encounter["spo2_scale"] == stored


def test_create_with_spo2_scale_1_needs_no_permission(client):
    assert create(client, spo2_scale=1)["spo2_scale"] == 1


def test_create_with_spo2_scale_2_without_can_edit_ews_is_403_and_writes_nothing(client, db):
    before = snapshot(db)
    response = client.post(ENCOUNTERS, json=create_body(spo2_scale=2), headers=auth())
    assert_error(response, 403, "spo2_scale 2", "can_edit_ews")
    assert snapshot(db) == before


def test_create_as_child_shows_the_parent(client):
    parent = create(client)
    child = create(
        client, child_of_encounter_uuid=parent["uuid"], patient_uuid=parent["patient_uuid"], epr_encounter_id="E"
    )
    assert set(child) == FULL_KEYS | {"child_of_encounter_uuid"}
    assert child["child_of_encounter_uuid"] == parent["uuid"]


def test_create_with_unknown_parent_is_422_and_writes_nothing(client, db):
    before = snapshot(db)
    parent = new_uuid()
    response = client.post(ENCOUNTERS, json=create_body(child_of_encounter_uuid=parent), headers=auth())
    assert_error(response, 422, parent)
    assert snapshot(db) == before


def test_create_with_a_used_epr_id_is_409(client, db):
    existing = create(client, epr_encounter_id="EPR-7")
    before = snapshot(db)
    response = client.post(ENCOUNTERS, json=create_body(epr_encounter_id="EPR-7"), headers=auth())
    assert_error(response, 409, "EPR-7", existing["uuid"])
    assert snapshot(db) == before


def test_create_may_reuse_the_epr_id_of_a_deleted_encounter(client):
    create(client, epr_encounter_id="EPR-8", deleted_at="2018-01-03T00:00:00Z")
    assert create(client, epr_encounter_id="EPR-8")["epr_encounter_id"] == "EPR-8"


@pytest.mark.parametrize(
    "second",
    [
        {"epr_encounter_id": ""},
        {"discharged_at": "2018-02-01T00:00:00Z"},
        {"child_of_encounter_uuid": "PARENT"},
    ],
    ids=["empty-epr-id", "discharged", "child"],
)
def test_a_second_local_encounter_while_one_is_open_is_409(client, db, second):
    open_local = create(client)
    second = {k: (open_local["uuid"] if v == "PARENT" else v) for k, v in second.items()}
    before = snapshot(db)
    response = client.post(
        ENCOUNTERS, json=create_body(patient_uuid=open_local["patient_uuid"], **second), headers=auth()
    )
    assert_error(response, 409, open_local["patient_uuid"], open_local["uuid"])
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "first",
    [
        {"discharged_at": "2018-01-05T00:00:00Z"},
        {"deleted_at": "2018-01-05T00:00:00Z"},
        {"epr_encounter_id": "EPR-9"},
    ],
    ids=["discharged", "deleted", "epr"],
)
def test_a_local_encounter_may_follow_one_that_is_not_open_and_local(client, first):
    earlier = create(client, **first)
    assert create(client, patient_uuid=earlier["patient_uuid"])["patient_uuid"] == earlier["patient_uuid"]


def test_a_local_child_encounter_does_not_block_a_local_top_level_one(client):
    parent = create(client, epr_encounter_id="EPR-10")
    create(client, patient_uuid=parent["patient_uuid"], child_of_encounter_uuid=parent["uuid"])
    assert create(client, patient_uuid=parent["patient_uuid"])["epr_encounter_id"] is None


def test_an_epr_encounter_may_join_an_open_local_one(client):
    local = create(client)
    assert create(client, patient_uuid=local["patient_uuid"], epr_encounter_id="EPR-11")["epr_encounter_id"] == "EPR-11"


def test_create_ignores_query_parameters(client):
    response = client.post(ENCOUNTERS, params={"compact": "true", "anything": "x"}, json=create_body(), headers=auth())
    assert response.status_code == 200
    assert set(response.json()) == FULL_KEYS


def test_create_with_a_location_visit_that_ends_before_it_starts_is_400(client, db):
    visit = {"location_uuid": new_uuid(), "arrived_at": "2018-01-02T00:00:00Z", "departed_at": "2018-01-01T00:00:00Z"}
    before = snapshot(db)
    response = client.post(ENCOUNTERS, json=create_body(location_history=[visit]), headers=auth())
    assert_error(response, 400, "location_history", "departed_at")
    assert snapshot(db) == before


# --- bad input: every field is checked at the edge; nothing is written ----------------------

REQUIRED = ["patient_uuid", "location_uuid", "patient_record_uuid", "dh_product_uuid", "admitted_at", "score_system"]
BAD_FIELDS = [
    ("patient_uuid", "not-a-uuid"),
    ("patient_uuid", 123),
    ("location_uuid", None),
    ("dh_product_uuid", ["x"]),
    ("child_of_encounter_uuid", "1234"),
    ("admitted_at", "2018-01-01T00:00:00"),
    ("admitted_at", "yesterday"),
    ("admitted_at", 1514764800),
    ("discharged_at", "2018-13-01T00:00:00Z"),
    ("score_system", 5),
    ("score_system", None),
    ("encounter_type", True),
    ("epr_encounter_id", 42),
    ("epr_encounter_id", "nul\x00inside"),
    ("spo2_scale", "2"),
    ("spo2_scale", 1.0),
    ("spo2_scale", True),  # a value that is no scale (3): tests/reliability/test_spo2_scale.py
    ("location_history", {"location_uuid": "x"}),
    ("location_history", [{"arrived_at": "2018-01-01T00:00:00Z"}]),
    ("location_history", [{"location_uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "arrived_at": "2018-01-01"}]),
    ("location_history", [{"location_uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "ward": "x"}]),
    ("colour", "blue"),
    ("uuid", "3fa85f64-5717-4562-b3fc-2c963f66afa6"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_create_refuses_a_bad_field_naming_it(client, db, field, value):
    before = snapshot(db)
    response = client.post(ENCOUNTERS, json=create_body(**{field: value}), headers=auth())
    assert_error(response, 400, field)
    assert snapshot(db) == before


@pytest.mark.parametrize("field", REQUIRED)
def test_create_refuses_a_missing_required_field_naming_it(client, db, field):
    before = snapshot(db)
    response = client.post(ENCOUNTERS, json=create_body(**{field: DROP}), headers=auth())
    assert_error(response, 400, field)
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "body is required"),
        (b"   ", "body is required"),
        (b"[]", "object"),
        (b'"text"', "object"),
        (b"null", "object"),
        (b"{not json", "not valid JSON"),
        (b'{"score_system": "news2",', "not valid JSON"),
    ],
)
def test_create_refuses_a_body_that_is_not_a_json_object(client, db, content, fragment):
    headers = auth() | {"Content-Type": "application/json"}
    response = client.post(ENCOUNTERS, content=content, headers=headers)
    assert_error(response, 400, fragment)
    assert snapshot(db)["encounter"] == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (auth(READ_SCOPE), 403), (auth(WRITE_SCOPE), 200)],
    ids=["no-token", "read-only", "write-only"],
)
def test_create_needs_the_write_scope(client, headers, status):
    assert client.post(ENCOUNTERS, json=create_body(), headers=headers).status_code == status


# --- read one by id -------------------------------------------------------------------------


def test_get_answers_the_full_form_as_created(client):
    encounter = create(client, location_history=[{"location_uuid": new_uuid(), "arrived_at": "2017-12-31T00:00:00Z"}])
    response = client.get(encounter_url(encounter["uuid"]), headers=auth(READ_SCOPE))
    assert response.status_code == 200
    assert response.json() == encounter


def test_get_of_a_deleted_encounter_needs_show_deleted(client):
    encounter = create(client, deleted_at="2018-01-02T00:00:00Z")
    url = encounter_url(encounter["uuid"])
    assert_error(client.get(url, headers=auth()), 404, encounter["uuid"])
    assert_error(client.get(url, params={"show_deleted": "false"}, headers=auth()), 404, encounter["uuid"])
    shown = client.get(url, params={"show_deleted": "true"}, headers=auth())
    assert shown.status_code == 200
    assert shown.json()["deleted_at"] == "2018-01-02T00:00:00.000Z"


def test_get_of_an_unknown_encounter_is_404(client):
    unknown = new_uuid()
    assert_error(client.get(encounter_url(unknown), headers=auth()), 404, unknown)


def test_get_with_a_path_id_that_is_not_a_uuid_is_404(client):
    assert_error(client.get(encounter_url("not-a-uuid"), headers=auth()), 404, "")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"compact": "true"}, "compact"), ({"show_deleted": "maybe"}, "show_deleted")],
)
def test_get_refuses_unknown_or_bad_query_parameters(client, params, fragment):
    encounter = create(client)
    assert_error(client.get(encounter_url(encounter["uuid"]), params=params, headers=auth()), 400, fragment)


def test_get_refuses_a_json_body(client):
    encounter = create(client)
    response = client.request("GET", encounter_url(encounter["uuid"]), json={"x": 1}, headers=auth())
    assert_error(response, 400, "body")


@pytest.mark.parametrize(("headers", "status"), [({}, 401), (auth(WRITE_SCOPE), 403), (auth(READ_SCOPE), 200)])
def test_get_needs_the_read_scope(client, headers, status):
    encounter = create(client)
    assert client.get(encounter_url(encounter["uuid"]), headers=headers).status_code == status
