"""POST /dhos/v1/encounter/merge, GET …/{id}/merge_history and PATCH /dhos/v1/score_system_history/{id}."""

from __future__ import annotations

import pytest

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.api.test_encounter_writes import (
    ISO_MS,
    assert_error,
    clear_outbox,
    create,
    encounter_url,
    new_uuid,
    outbox,
    snapshot,
)
from tests.helpers import auth

MERGE = "/dhos/v1/encounter/merge"
SYSTEM = auth(READ_SCOPE, WRITE_SCOPE, system_id="dhos-robot")


def merge_body(child_record: str, **changes: str) -> dict:
    return {
        "child_record_uuid": child_record,
        "parent_record_uuid": new_uuid(),
        "parent_patient_uuid": new_uuid(),
        "message_uuid": new_uuid(),
    } | changes


def merge(client, body: dict, headers: dict | None = None):
    return client.post(MERGE, json=body, headers=auth() if headers is None else headers)


def merge_history(client, encounter_uuid: str) -> list[dict]:
    response = client.get(f"{encounter_url(encounter_uuid)}/merge_history", headers=auth(READ_SCOPE))
    assert response.status_code == 200, response.text
    return response.json()


def record_and_patient(db, encounter_uuid: str) -> tuple[str, str]:
    record, patient = db.execute(
        "SELECT patient_record_uuid, patient_uuid FROM encounters.encounter WHERE uuid = %s", [encounter_uuid]
    ).fetchone()
    return str(record), str(patient)


def child_record_with_three_encounters(client) -> tuple[str, list[dict]]:
    """A patient record with an open, a deleted and a child encounter."""
    record = new_uuid()
    top = create(client, patient_record_uuid=record, epr_encounter_id="EPR-1")
    patient = top["patient_uuid"]
    deleted = create(client, patient_record_uuid=record, patient_uuid=patient, deleted_at="2018-01-02T00:00:00Z")
    child = create(client, patient_record_uuid=record, patient_uuid=patient, child_of_encounter_uuid=top["uuid"])
    return record, [top, deleted, child]


# --- merge ----------------------------------------------------------------------------------


def test_merge_moves_every_encounter_of_the_child_record(client, db):
    record, encounters = child_record_with_three_encounters(client)
    bystander = create(client)
    clear_outbox(db)
    body = merge_body(record)
    response = merge(client, body, auth(READ_SCOPE, WRITE_SCOPE, system_id="dhos-async-adapter"))
    assert response.status_code == 200
    assert response.json() == {"total": 3}
    for encounter in encounters:
        assert record_and_patient(db, encounter["uuid"]) == (body["parent_record_uuid"], body["parent_patient_uuid"])
        (entry,) = merge_history(client, encounter["uuid"])
        assert entry == {
            "record_uuid": record,
            "patient_uuid": encounter["patient_uuid"],
            "message_uuid": body["message_uuid"],
            "merged_at": entry["merged_at"],
        }
        assert ISO_MS.match(entry["merged_at"])
    assert record_and_patient(db, bystander["uuid"]) == (bystander["patient_record_uuid"], bystander["patient_uuid"])
    assert merge_history(client, bystander["uuid"]) == []
    moved = sorted(e["uuid"] for e in encounters)
    assert outbox(db) == [("dhos.DM000007", {"encounter_id": uuid}, uuid) for uuid in moved]
    modified_by = "SELECT DISTINCT modified_by FROM encounters.encounter WHERE patient_record_uuid = %s"
    assert db.execute(modified_by, [body["parent_record_uuid"]]).fetchall() == [("dhos-async-adapter",)]


def test_a_replayed_merge_changes_nothing(client, db):
    record, _ = child_record_with_three_encounters(client)
    body = merge_body(record)
    assert merge(client, body).json() == {"total": 3}
    before = snapshot(db)
    response = merge(client, body)
    assert response.status_code == 200
    assert response.json() == {"total": 0}
    assert snapshot(db) == before


def test_a_merge_of_a_record_without_encounters_moves_none(client, db):
    response = merge(client, merge_body(new_uuid()))
    assert response.json() == {"total": 0}
    assert outbox(db) == []


def test_merge_history_lists_successive_merges_oldest_first(client):
    first_record = new_uuid()
    encounter = create(client, patient_record_uuid=first_record)
    first = merge_body(first_record)
    second = merge_body(first["parent_record_uuid"])
    assert merge(client, first).json() == {"total": 1}
    assert merge(client, second).json() == {"total": 1}
    history = merge_history(client, encounter["uuid"])
    assert [(h["record_uuid"], h["patient_uuid"], h["message_uuid"]) for h in history] == [
        (first_record, encounter["patient_uuid"], first["message_uuid"]),
        (first["parent_record_uuid"], first["parent_patient_uuid"], second["message_uuid"]),
    ]
    assert history[0]["merged_at"] <= history[1]["merged_at"]


def test_merge_history_does_not_change_the_encounter_form(client):
    encounter = create(client)
    merge(client, merge_body(encounter["patient_record_uuid"]))
    shown = client.get(encounter_url(encounter["uuid"]), headers=auth()).json()
    assert set(shown) == set(encounter)


def test_merge_of_a_record_into_itself_is_400(client, db):
    encounter = create(client)
    record = encounter["patient_record_uuid"]
    before = snapshot(db)
    assert_error(merge(client, merge_body(record, parent_record_uuid=record)), 400, "same record")
    assert snapshot(db) == before


def test_merge_that_would_give_two_open_local_encounters_is_409_and_moves_nothing(client, db):
    child_side = create(client)
    parent_side = create(client)
    before = snapshot(db)
    body = merge_body(
        child_side["patient_record_uuid"],
        parent_record_uuid=parent_side["patient_record_uuid"],
        parent_patient_uuid=parent_side["patient_uuid"],
    )
    assert_error(merge(client, body), 409, parent_side["patient_uuid"], "two open local encounters")
    assert snapshot(db) == before


def test_merge_ignores_query_parameters(client):
    encounter = create(client)
    response = client.post(
        MERGE, params={"compact": "true"}, json=merge_body(encounter["patient_record_uuid"]), headers=auth()
    )
    assert response.json() == {"total": 1}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"message_uuid": "not-a-uuid"}, "message_uuid"),
        ({"parent_patient_uuid": None}, "parent_patient_uuid"),
        ({"extra": "x"}, "extra"),
    ],
)
def test_merge_refuses_bad_bodies(client, db, change, fragment):
    encounter = create(client)
    before = snapshot(db)
    assert_error(merge(client, merge_body(encounter["patient_record_uuid"]) | change), 400, fragment)
    assert snapshot(db) == before


def test_merge_refuses_a_body_without_a_field(client):
    body = merge_body(new_uuid())
    del body["message_uuid"]
    assert_error(merge(client, body), 400, "message_uuid")


@pytest.mark.parametrize(("headers", "status"), [({}, 401), (auth(READ_SCOPE), 403)])
def test_merge_needs_the_write_scope(client, headers, status):
    assert merge(client, merge_body(new_uuid()), headers).status_code == status


def test_merge_history_of_an_unknown_encounter_is_404(client):
    unknown = new_uuid()
    assert_error(client.get(f"{encounter_url(unknown)}/merge_history", headers=auth()), 404, unknown)


def test_merge_history_needs_the_read_scope(client):
    encounter = create(client)
    assert client.get(f"{encounter_url(encounter['uuid'])}/merge_history", headers=auth(WRITE_SCOPE)).status_code == 403


# --- score system history: correcting changed_time ------------------------------------------


@pytest.fixture
def history_entry(client) -> tuple[dict, dict]:
    """An encounter whose score system changed once, and that history entry."""
    encounter = create(client)
    editor = auth(READ_SCOPE, WRITE_SCOPE, clinician_id="c", can_edit_ews=True)
    response = client.patch(encounter_url(encounter["uuid"]), json={"spo2_scale": 2}, headers=editor)
    (entry,) = response.json()["score_system_history"]
    return encounter, entry


def history_url(entry_uuid: str) -> str:
    return f"/dhos/v1/score_system_history/{entry_uuid}"


def test_a_system_can_correct_when_a_score_change_took_effect(client, db, history_entry):
    encounter, entry = history_entry
    clear_outbox(db)
    response = client.patch(
        history_url(entry["uuid"]), json={"changed_time": "2019-01-01T12:00:00+01:00"}, headers=SYSTEM
    )
    assert response.status_code == 200
    corrected = entry | {"changed_time": "2019-01-01T11:00:00.000Z"}
    assert response.json() == corrected
    shown = client.get(encounter_url(encounter["uuid"]), headers=auth()).json()
    assert shown["score_system_history"] == [corrected]
    assert db.execute("SELECT modified_by FROM encounters.score_system_history").fetchall() == [("dhos-robot",)]
    assert outbox(db) == []


@pytest.mark.parametrize(
    "headers",
    [auth(), auth(READ_SCOPE, system_id="dhos-robot"), auth(READ_SCOPE, WRITE_SCOPE, system_id="")],
    ids=["clinician", "system-without-write", "empty-system-id"],
)
def test_only_systems_with_write_scope_may_correct_score_history(client, history_entry, headers):
    _, entry = history_entry
    response = client.patch(history_url(entry["uuid"]), json={"changed_time": "2019-01-01T00:00:00Z"}, headers=headers)
    assert response.status_code == 403


def test_correcting_an_unknown_score_history_entry_is_404(client):
    unknown = new_uuid()
    response = client.patch(history_url(unknown), json={"changed_time": "2019-01-01T00:00:00Z"}, headers=SYSTEM)
    assert_error(response, 404, unknown)
    assert (
        client.patch(history_url("abc"), json={"changed_time": "2019-01-01T00:00:00Z"}, headers=SYSTEM).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "changed_time"),
        ({"changed_time": "2019-01-01T00:00:00"}, "changed_time"),
        ({"changed_time": None}, "changed_time"),
        ({"changed_time": "2019-01-01T00:00:00Z", "score_system": "x"}, "score_system"),
    ],
)
def test_score_history_correction_refuses_bad_bodies(client, db, history_entry, body, fragment):
    _, entry = history_entry
    before = snapshot(db)
    assert_error(client.patch(history_url(entry["uuid"]), json=body, headers=SYSTEM), 400, fragment)
    assert snapshot(db) == before


def test_merge_history_and_score_history_correction_refuse_query_parameters(client, history_entry):
    encounter, entry = history_entry
    history = client.get(f"{encounter_url(encounter['uuid'])}/merge_history", params={"compact": "1"}, headers=auth())
    assert_error(history, 400, "compact")
    correction = client.patch(
        history_url(entry["uuid"]), params={"x": "1"}, json={"changed_time": "2019-01-01T00:00:00Z"}, headers=SYSTEM
    )
    assert_error(correction, 400, "x")
