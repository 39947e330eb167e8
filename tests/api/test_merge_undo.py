"""POST /dhos/v1/encounter/merge/undo: a merge's encounters go back, all or none, and their merge
history, versions, kept history, events and the change feed show it (encounters_api.undo_merge)."""

from __future__ import annotations

import logging

import httpx
import pytest

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.api.test_change_feed import Consumer, current_states, uuids
from tests.api.test_encounter_writes import (
    ENCOUNTERS,
    ISO_MS,
    assert_error,
    clear_outbox,
    create,
    create_body,
    encounter_url,
    new_uuid,
    outbox,
    snapshot,
)
from tests.api.test_encounter_writes_merge import (
    MERGE,
    child_record_with_three_encounters,
    merge,
    merge_body,
    merge_history,
    record_and_patient,
)
from tests.api.test_versions import version_of
from tests.api.test_write_concurrency import in_parallel, statuses
from tests.helpers import auth

UNDO = "/dhos/v1/encounter/merge/undo"


def undo(client, message_uuid: str, headers: dict | None = None):
    return client.post(UNDO, json={"message_uuid": message_uuid}, headers=auth() if headers is None else headers)


def everything(db) -> dict[str, list[str]]:
    """snapshot(db), with the merge undos and the kept versions."""
    return snapshot(db) | {
        table: [row for (row,) in db.execute(f"SELECT t::text FROM encounters.{table} AS t ORDER BY 1")]
        for table in ("merge_undo", "encounter_history")
    }


def merged_record(client) -> tuple[dict, list[dict]]:
    """The three encounters of a record (open, deleted, child), merged: the merge body, the encounters before."""
    record, encounters = child_record_with_three_encounters(client)
    body = merge_body(record)
    assert merge(client, body).json() == {"total": 3}
    return body, encounters


def test_undo_moves_every_encounter_the_merge_moved_back(client, db):
    body, encounters = merged_record(client)
    bystander = create(client)
    histories = {e["uuid"]: client.get(f"{encounter_url(e['uuid'])}/merge_history", headers=auth()) for e in encounters}
    versions = {e["uuid"]: version_of(client, e["uuid"]) for e in encounters}
    consumer = Consumer(client)
    consumer.read_to_end()
    clear_outbox(db)

    response = undo(client, body["message_uuid"], auth(READ_SCOPE, WRITE_SCOPE, system_id="dhos-robot"))
    assert response.status_code == 200, response.text
    assert response.json() == {"total": 3}

    for encounter in encounters:
        uuid = encounter["uuid"]
        assert record_and_patient(db, uuid) == (encounter["patient_record_uuid"], encounter["patient_uuid"])
        # The merge's entry stays byte for byte; the undo is an entry of its own after it.
        shown = client.get(f"{encounter_url(uuid)}/merge_history", headers=auth())
        assert shown.content.startswith(histories[uuid].content.removesuffix(b"]") + b", ")
        merged, undone = shown.json()
        assert merged == histories[uuid].json()[0]
        assert undone == {
            "record_uuid": body["parent_record_uuid"],
            "patient_uuid": body["parent_patient_uuid"],
            "message_uuid": body["message_uuid"],
            "merged_at": undone["merged_at"],
        }
        assert ISO_MS.match(undone["merged_at"]) and undone["merged_at"] >= merged["merged_at"]
        # A new version, kept in the history as the encounter is now.
        assert version_of(client, uuid) == f'"{int(versions[uuid].strip(chr(34))) + 1}"'
        latest = client.get(f"{encounter_url(uuid)}/history", headers=auth()).json()[-1]
        assert latest["modified_by"] == "dhos-robot"
        assert latest["encounter"]["patient_record_uuid"] == encounter["patient_record_uuid"]
        assert latest["encounter"]["patient_uuid"] == encounter["patient_uuid"]
    assert record_and_patient(db, bystander["uuid"]) == (bystander["patient_record_uuid"], bystander["patient_uuid"])
    moved = sorted(e["uuid"] for e in encounters)
    assert outbox(db) == [("dhos.DM000007", {"encounter_id": uuid}, uuid) for uuid in moved]
    # The feed hands the three out again, as they are now.
    assert sorted(uuids(consumer.read_to_end())) == moved
    assert consumer.held == current_states(db)


def test_a_second_undo_of_the_same_merge_moves_nothing(client, db):
    body, _ = merged_record(client)
    assert undo(client, body["message_uuid"]).json() == {"total": 3}
    before = everything(db)
    response = undo(client, body["message_uuid"])
    assert response.status_code == 200
    assert response.json() == {"total": 0}
    assert everything(db) == before


def test_a_replay_of_an_undone_merge_changes_nothing(client, db):
    body, _ = merged_record(client)
    assert undo(client, body["message_uuid"]).json() == {"total": 3}
    before = everything(db)
    assert merge(client, body).json() == {"total": 0}
    assert everything(db) == before


def test_undo_of_an_unknown_merge_is_404(client, db):
    create(client)
    unknown = new_uuid()
    before = everything(db)
    assert_error(undo(client, unknown), 404, unknown)
    assert everything(db) == before


def test_undo_after_an_encounter_changed_record_is_409_and_moves_nothing(client, db):
    body, encounters = merged_record(client)
    elsewhere = new_uuid()
    moved_on = encounters[1]["uuid"]
    patched = client.patch(encounter_url(moved_on), json={"patient_record_uuid": elsewhere}, headers=auth())
    assert patched.status_code == 200, patched.text
    before = everything(db)
    assert_error(undo(client, body["message_uuid"]), 409, moved_on, elsewhere, "nothing moved")
    assert everything(db) == before


def test_undo_after_a_later_merge_is_409_until_that_merge_is_undone(client, db):
    first_record = new_uuid()
    encounter = create(client, patient_record_uuid=first_record)
    first = merge_body(first_record)
    second = merge_body(first["parent_record_uuid"])
    assert merge(client, first).json() == {"total": 1}
    assert merge(client, second).json() == {"total": 1}
    before = everything(db)
    assert_error(undo(client, first["message_uuid"]), 409, encounter["uuid"], second["parent_record_uuid"])
    assert everything(db) == before

    assert undo(client, second["message_uuid"]).json() == {"total": 1}
    assert undo(client, first["message_uuid"]).json() == {"total": 1}
    assert record_and_patient(db, encounter["uuid"]) == (first_record, encounter["patient_uuid"])
    history = merge_history(client, encounter["uuid"])
    assert [(h["record_uuid"], h["message_uuid"]) for h in history] == [
        (first_record, first["message_uuid"]),
        (first["parent_record_uuid"], second["message_uuid"]),
        (second["parent_record_uuid"], second["message_uuid"]),
        (first["parent_record_uuid"], first["message_uuid"]),
    ]


def test_undo_that_would_give_a_patient_two_open_local_encounters_is_409_and_moves_nothing(client, db):
    body, encounters = merged_record(client)
    patient = encounters[0]["patient_uuid"]
    # The record's open encounter has an EPR id; a new open local encounter of the patient, and
    # an open local one merged away, would clash on the way back.
    local_record = new_uuid()
    local = create(client, patient_uuid=patient, patient_record_uuid=local_record)
    local_merge = merge_body(local_record)
    assert merge(client, local_merge).json() == {"total": 1}
    newer = create(client, patient_uuid=patient)
    before = everything(db)
    assert_error(undo(client, local_merge["message_uuid"]), 409, patient, newer["uuid"], "two open local encounters")
    assert everything(db) == before
    assert record_and_patient(db, local["uuid"]) == (
        local_merge["parent_record_uuid"],
        local_merge["parent_patient_uuid"],
    )
    assert undo(client, body["message_uuid"]).json() == {"total": 3}  # EPR and child encounters do not clash


def test_undo_of_a_merge_recorded_before_targets_were_kept_is_409(client, db):
    body, encounters = merged_record(client)
    db.execute(
        "UPDATE encounters.merge_history SET parent_record_uuid = NULL, parent_patient_uuid = NULL"
        " WHERE message_uuid = %s",
        [body["message_uuid"]],
    )
    before = everything(db)
    assert_error(undo(client, body["message_uuid"]), 409, encounters[0]["uuid"], "merged before")
    assert everything(db) == before


@pytest.mark.parametrize(
    ("body", "fragment"),
    [({"message_uuid": "not-a-uuid"}, "message_uuid"), ({}, "message_uuid"), ({"message_uuid": None}, "message_uuid")],
)
def test_undo_refuses_bad_bodies(client, body, fragment):
    assert_error(client.post(UNDO, json=body, headers=auth()), 400, fragment)


def test_undo_refuses_unknown_fields_and_query_parameters(client):
    assert_error(client.post(UNDO, json={"message_uuid": new_uuid(), "extra": 1}, headers=auth()), 400, "extra")
    response = client.post(UNDO, params={"compact": "true"}, json={"message_uuid": new_uuid()}, headers=auth())
    assert_error(response, 400, "compact")


@pytest.mark.parametrize(("headers", "status"), [({}, 401), (auth(READ_SCOPE), 403)])
def test_undo_needs_the_write_scope(client, headers, status):
    assert undo(client, new_uuid(), headers).status_code == status


# --- concurrency ------------------------------------------------------------------------------


def race_an_undo_a_merge_and_a_patch(live_server: str, db) -> None:
    """Undo of merge 1 (record 1 → 2), merge 2 (record 2 → 3) and a PATCH of one of the encounters,
    all at once: one of the merge and the undo wins, the other finds nothing to do or refuses."""
    record = new_uuid()
    with httpx.Client(base_url=live_server, headers=auth()) as http:
        first = http.post(ENCOUNTERS, json=create_body(patient_record_uuid=record, epr_encounter_id=new_uuid())).json()
        http.post(ENCOUNTERS, json=create_body(patient_record_uuid=record, patient_uuid=first["patient_uuid"]))
        first_merge = merge_body(record)
        assert http.post(MERGE, json=first_merge).json() == {"total": 2}
    second_merge = merge_body(first_merge["parent_record_uuid"])
    undone, merged, patch = in_parallel(
        live_server,
        [
            lambda http: http.post(UNDO, json={"message_uuid": first_merge["message_uuid"]}),
            lambda http: http.post(MERGE, json=second_merge),
            lambda http: http.patch(encounter_url(first["uuid"]), json={"location_uuid": new_uuid()}),
        ],
    )
    assert patch.status_code == 200, patch.text
    assert merged.status_code == 200, merged.text
    if undone.status_code == 200:  # the undo first: the second merge found record 2 empty
        assert (undone.json(), merged.json()) == ({"total": 2}, {"total": 0})
        where = (record, first["patient_uuid"])
    else:  # the merge first: the undo found the encounters moved on
        assert_error(undone, 409, "nothing moved")
        assert merged.json() == {"total": 2}
        where = (second_merge["parent_record_uuid"], second_merge["parent_patient_uuid"])
    rows = db.execute(
        "SELECT DISTINCT patient_record_uuid::text, patient_uuid::text FROM encounters.encounter"
        " WHERE patient_record_uuid IN (%s, %s, %s)",
        [record, first_merge["parent_record_uuid"], second_merge["parent_record_uuid"]],
    ).fetchall()
    assert rows == [where]


def test_an_undo_racing_a_merge_and_a_patch_of_the_same_patients_never_deadlocks(live_server, db, caplog):
    """Five races; the lock order (patients, then rows) leaves no deadlock for the service to retry."""
    caplog.set_level(logging.INFO, logger="encounters_service.db")
    for _ in range(5):
        race_an_undo_a_merge_and_a_patch(live_server, db)
    assert "DeadlockDetected" not in caplog.text


def test_simultaneous_undos_of_one_merge_move_each_encounter_back_once(live_server, db):
    with httpx.Client(base_url=live_server, headers=auth()) as http:
        body, _ = merged_record(http)
        clear_outbox(db)
    responses = in_parallel(
        live_server, [lambda http: http.post(UNDO, json={"message_uuid": body["message_uuid"]})] * 5
    )
    assert statuses(responses) == {200: 5}
    assert sorted(r.json()["total"] for r in responses) == [0, 0, 0, 0, 3]
    assert [key for key, _, _ in outbox(db)] == ["dhos.DM000007"] * 3
    assert db.execute("SELECT count(*) FROM encounters.merge_undo").fetchone() == (3,)
