"""PATCH and DELETE /dhos/v1/encounter/{id}: the update rules of SPEC.md, their events, and unlinking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.api.test_encounter_writes import (
    FULL_KEYS,
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

EWS_EDITOR = auth(READ_SCOPE, WRITE_SCOPE, clinician_id="clinician-ews", can_edit_ews=True)


def patch(client, encounter: dict, body: dict, headers: dict | None = None):
    return client.patch(encounter_url(encounter["uuid"]), json=body, headers=auth() if headers is None else headers)


def patched(client, encounter: dict, body: dict, headers: dict | None = None) -> dict:
    response = patch(client, encounter, body, headers)
    assert response.status_code == 200, response.text
    return response.json()


def unlink(client, encounter: dict, parent_uuid: str, headers: dict | None = None):
    return client.request(
        "DELETE",
        encounter_url(encounter["uuid"]),
        json={"child_of_encounter_uuid": parent_uuid},
        headers=auth() if headers is None else headers,
    )


def modified(db, encounter: dict) -> tuple[datetime, str]:
    return db.execute(
        "SELECT modified, modified_by FROM encounters.encounter WHERE uuid = %s", [encounter["uuid"]]
    ).fetchone()


def parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


# --- fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("encounter_type", "OUTPATIENT", "OUTPATIENT"),
        ("encounter_type", None, None),
        ("epr_encounter_id", "EPR-NEW", "EPR-NEW"),
        ("admitted_at", "2018-01-01T09:00:00+02:00", "2018-01-01T07:00:00.000Z"),
        ("discharged_at", "2018-01-05T00:00:00.5Z", "2018-01-05T00:00:00.500Z"),
        ("deleted_at", "2018-01-06T00:00:00Z", "2018-01-06T00:00:00.000Z"),
        ("patient_record_uuid", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "3fa85f64-5717-4562-b3fc-2c963f66afa6"),
    ],
)
def test_patch_changes_the_field_and_answers_the_full_form(client, db, field, value, shown):
    encounter = create(client)
    updated = patched(client, encounter, {field: value}, auth(READ_SCOPE, WRITE_SCOPE, clinician_id="editor"))
    assert set(updated) == FULL_KEYS
    assert updated == encounter | {field: shown}
    assert modified(db, encounter)[1] == "editor"


def test_patch_of_dh_product_uuid_shows_in_dh_product(client):
    encounter = create(client)
    product = new_uuid()
    assert patched(client, encounter, {"dh_product_uuid": product})["dh_product"] == [{"uuid": product}]


def test_patch_changes_only_the_fields_present(client):
    encounter = create(client, epr_encounter_id="EPR-1", discharged_at="2018-01-02T00:00:00Z")
    assert patched(client, encounter, {}) == encounter
    assert patched(client, encounter, {"encounter_type": "X"}) == encounter | {"encounter_type": "X"}


@pytest.mark.parametrize("cleared", [{"epr_encounter_id": None}, {"epr_encounter_id": ""}])
def test_patch_null_or_empty_epr_id_makes_the_encounter_local(client, cleared):
    encounter = create(client, epr_encounter_id="EPR-2")
    assert patched(client, encounter, cleared)["epr_encounter_id"] is None


@pytest.mark.parametrize("field", ["discharged_at", "deleted_at"])
def test_patch_null_reopens_or_undeletes(client, field):
    encounter = create(client, epr_encounter_id="EPR-3", **{field: "2018-01-02T00:00:00Z"})
    assert patched(client, encounter, {field: None})[field] is None


@pytest.mark.parametrize("field", ["spo2_scale", "child_of_encounter_uuid"])
def test_patch_null_spo2_scale_or_parent_leaves_them_as_they_are(client, field):
    parent = create(client, epr_encounter_id="EPR-P")
    encounter = create(client, epr_encounter_id="EPR-C", child_of_encounter_uuid=parent["uuid"])
    assert patched(client, encounter, {field: None}) == encounter


def test_every_patch_sets_modified_and_modified_by(client, db):
    encounter = create(client)
    before, _ = modified(db, encounter)
    patched(client, encounter, {}, auth(READ_SCOPE, WRITE_SCOPE, system_id="dhos-robot"))
    after, by = modified(db, encounter)
    assert after > before
    assert by == "dhos-robot"


def test_soft_deleted_encounter_is_hidden_from_get_but_kept(client, db):
    encounter = create(client)
    patched(client, encounter, {"deleted_at": "2018-01-02T00:00:00Z"})
    assert client.get(encounter_url(encounter["uuid"]), headers=auth()).status_code == 404
    assert db.execute("SELECT count(*) FROM encounters.encounter").fetchone() == (1,)


# --- location history -----------------------------------------------------------------------


def test_a_move_records_the_previous_location_from_admission_until_now(client):
    encounter = create(client)
    first_ward, second_ward = new_uuid(), new_uuid()
    moved = patched(client, encounter, {"location_uuid": first_ward})
    assert moved["location_uuid"] == first_ward
    (entry,) = moved["location_history"]
    assert entry["location_uuid"] == encounter["location_uuid"]
    assert entry["arrived_at"] == encounter["admitted_at"]
    assert abs(parse(entry["departed_at"]) - datetime.now().astimezone()) < timedelta(seconds=30)
    assert ISO_MS.match(entry["departed_at"]) and ISO_MS.match(entry["created_at"])

    again = patched(client, encounter, {"location_uuid": second_ward})["location_history"]
    assert [e["location_uuid"] for e in again] == [encounter["location_uuid"], first_ward]
    assert again[1]["arrived_at"] == again[0]["departed_at"]
    assert parse(again[1]["departed_at"]) >= parse(again[1]["arrived_at"])


def test_a_move_after_a_given_history_arrives_when_the_last_visit_departed(client):
    visit = {"location_uuid": new_uuid(), "arrived_at": "2018-01-01T08:00:00Z", "departed_at": "2018-01-01T09:15:00Z"}
    encounter = create(client, location_history=[visit])
    history = patched(client, encounter, {"location_uuid": new_uuid()})["location_history"]
    assert history[1]["location_uuid"] == encounter["location_uuid"]
    assert history[1]["arrived_at"] == "2018-01-01T09:15:00.000Z"


def test_staying_at_the_same_location_writes_no_history(client):
    encounter = create(client)
    assert patched(client, encounter, {"location_uuid": encounter["location_uuid"]})["location_history"] == []


# --- score system and SpO2 scale ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "entry"),
    [
        ({"score_system": "meows"}, {"score_system": "meows", "spo2_scale": None}),
        ({"spo2_scale": 2}, {"score_system": None, "spo2_scale": 2}),
        ({"score_system": "meows", "spo2_scale": 2}, {"score_system": "meows", "spo2_scale": 2}),
        ({"score_system": "news2", "spo2_scale": 2}, {"score_system": "news2", "spo2_scale": 2}),
    ],
    ids=["score-system", "spo2", "both", "spo2-and-same-score-system"],
)
def test_a_score_change_writes_one_history_entry_with_the_requested_values(client, body, entry):
    encounter = create(client)
    updated = patched(client, encounter, body, EWS_EDITOR)
    (history,) = updated["score_system_history"]
    assert history | {"uuid": None, "changed_time": None} == {
        "uuid": None,
        "changed_time": None,
        "previous_score_system": "news2",
        "previous_spo2_scale": 1,
        "created_by": "clinician-ews",
        "changed_by": "clinician-ews",
        **entry,
    }
    assert ISO_MS.match(history["changed_time"])
    assert updated["score_system"] == body.get("score_system", "news2")
    assert updated["spo2_scale"] == body.get("spo2_scale", 1)


@pytest.mark.parametrize(
    "body", [{"score_system": "news2"}, {"spo2_scale": 1}, {"score_system": "news2", "spo2_scale": 1}]
)
def test_requesting_the_current_score_values_writes_nothing_and_needs_no_permission(client, db, body):
    encounter = create(client)
    clear_outbox(db)
    assert patched(client, encounter, body)["score_system_history"] == []
    assert outbox(db) == []


def test_a_refused_score_change_is_403_writes_only_its_audit_event(client, db):
    encounter = create(client, epr_encounter_id="EPR-4")
    clear_outbox(db)
    before = snapshot(db)
    body = {"spo2_scale": 2, "location_uuid": new_uuid(), "encounter_type": "X"}
    response = patch(client, encounter, body, auth(READ_SCOPE, WRITE_SCOPE, clinician_id="nurse"))
    assert_error(response, 403, "can_edit_ews")
    after = snapshot(db)
    assert {table: rows for table, rows in after.items() if table != "outbox"} == {
        table: rows for table, rows in before.items() if table != "outbox"
    }
    assert outbox(db) == [
        (
            "dhos.34837004",
            {
                "event_type": "ews_change_failure",
                "event_data": {
                    "clinician_id": "nurse",
                    "encounter_id": encounter["uuid"],
                    "epr_encounter_id": "EPR-4",
                    "previous_score_system": "news2",
                    "previous_spo2_scale": 1,
                    "new_score_system": None,
                    "new_spo2_scale": 2,
                },
            },
            encounter["uuid"],
        )
    ]


def test_can_edit_ews_must_be_true_not_just_present(client):
    encounter = create(client)
    headers = auth(READ_SCOPE, WRITE_SCOPE, clinician_id="c", can_edit_ews="true")
    assert patch(client, encounter, {"score_system": "meows"}, headers).status_code == 403


# --- events ---------------------------------------------------------------------------------


def test_a_field_change_records_the_update_and_the_modifications(client, db):
    encounter = create(client, encounter_type="INPATIENT")
    clear_outbox(db)
    ward = new_uuid()
    patched(
        client, encounter, {"encounter_type": "DAYCASE", "location_uuid": ward, "discharged_at": "2018-01-03T00:00:00Z"}
    )
    assert outbox(db) == [
        ("dhos.DM000007", {"encounter_id": encounter["uuid"]}, encounter["uuid"]),
        (
            "dhos.34837004",
            {
                "event_type": "encounter_modified",
                "event_data": {
                    "clinician_id": "clinician-1",
                    "encounter_id": encounter["uuid"],
                    "modifications": [
                        {"field": "discharged_at", "old": None, "new": "2018-01-03T00:00:00.000Z"},
                        {"field": "encounter_type", "old": "INPATIENT", "new": "DAYCASE"},
                        {"field": "location_uuid", "old": encounter["location_uuid"], "new": ward},
                    ],
                },
            },
            encounter["uuid"],
        ),
    ]


def test_changes_by_the_async_adapter_are_not_audited(client, db):
    encounter = create(client)
    clear_outbox(db)
    patched(client, encounter, {"encounter_type": "X"}, auth(READ_SCOPE, WRITE_SCOPE, system_id="dhos-async-adapter"))
    assert outbox(db) == [("dhos.DM000007", {"encounter_id": encounter["uuid"]}, encounter["uuid"])]


def test_a_patch_that_changes_nothing_records_no_event(client, db):
    encounter = create(client)
    clear_outbox(db)
    patched(
        client, encounter, {"encounter_type": encounter["encounter_type"], "location_uuid": encounter["location_uuid"]}
    )
    assert outbox(db) == []


def test_a_score_change_records_its_audit_and_observation_set_events(client, db):
    encounter = create(client, epr_encounter_id="EPR-5")
    clear_outbox(db)
    updated = patched(client, encounter, {"spo2_scale": 2}, EWS_EDITOR)
    events = outbox(db)
    assert [(key, body.get("event_type")) for key, body, _ in events] == [
        ("dhos.34837004", "score_system_changed"),
        ("dhos.DM000005", None),
        ("dhos.DM000007", None),
        ("dhos.34837004", "encounter_modified"),
    ]
    assert {about for _, _, about in events} == {encounter["uuid"]}
    changed_at, _ = modified(db, encounter)
    modified_iso = changed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    audit = events[0][1]["event_data"]
    assert audit == {
        "clinician_id": "clinician-ews",
        "encounter_id": encounter["uuid"],
        "epr_encounter_id": "EPR-5",
        "previous_score_system": "news2",
        "previous_spo2_scale": 1,
        "new_score_system": None,
        "new_spo2_scale": 2,
        "modified": modified_iso,
        "modified_by": "clinician-ews",
    }
    (action,) = events[1][1]["actions"]
    assert action["name"] == "process_observation_set"
    assert set(action["data"]) == {"encounter", "observation_set"}
    assert action["data"]["encounter"] == updated | {
        "created_by": "clinician-1",
        "modified": modified_iso,
        "modified_by": "clinician-ews",
    }
    observation_set = action["data"]["observation_set"]
    assert observation_set == {
        "uuid": observation_set["uuid"],
        "record_time": modified_iso,
        "score_system": "news2",
        "spo2_scale": 2,
        "created": modified_iso,
        "created_by": "clinician-ews",
        "modified": modified_iso,
        "modified_by": "clinician-ews",
    }
    assert events[3][1]["event_data"]["modifications"] == [{"field": "spo2_scale", "old": 1, "new": 2}]


# --- hierarchy and duplicates -------------------------------------------------------------


def test_patch_can_attach_an_encounter_to_a_parent(client):
    parent = create(client, epr_encounter_id="EPR-P")
    child = create(client, patient_uuid=parent["patient_uuid"])
    assert (
        patched(client, child, {"child_of_encounter_uuid": parent["uuid"]})["child_of_encounter_uuid"] == parent["uuid"]
    )


def test_patch_with_an_unknown_parent_is_422_and_writes_nothing(client, db):
    encounter = create(client)
    before = snapshot(db)
    unknown = new_uuid()
    assert_error(patch(client, encounter, {"child_of_encounter_uuid": unknown, "encounter_type": "X"}), 422, unknown)
    assert snapshot(db) == before


def test_an_encounter_cannot_become_its_own_ancestor(client, db):
    top = create(client, epr_encounter_id="A")
    middle = create(client, epr_encounter_id="B", child_of_encounter_uuid=top["uuid"])
    bottom = create(client, epr_encounter_id="C", child_of_encounter_uuid=middle["uuid"])
    before = snapshot(db)
    for parent in (top, middle, bottom):
        assert_error(patch(client, top, {"child_of_encounter_uuid": parent["uuid"]}), 400, "own ancestor")
    assert snapshot(db) == before


def test_patch_to_an_epr_id_in_use_is_409(client, db):
    holder = create(client, epr_encounter_id="EPR-6")
    other = create(client, epr_encounter_id="EPR-OTHER")
    before = snapshot(db)
    assert_error(patch(client, other, {"epr_encounter_id": "EPR-6"}), 409, "EPR-6", holder["uuid"])
    assert snapshot(db) == before


def test_patch_may_take_the_epr_id_of_a_deleted_encounter(client):
    create(client, epr_encounter_id="EPR-7", deleted_at="2018-01-02T00:00:00Z")
    other = create(client)
    assert patched(client, other, {"epr_encounter_id": "EPR-7"})["epr_encounter_id"] == "EPR-7"


@pytest.mark.parametrize(
    ("earlier", "change"),
    [
        ({"discharged_at": "2018-01-02T00:00:00Z"}, {"discharged_at": None}),
        ({"deleted_at": "2018-01-02T00:00:00Z"}, {"deleted_at": None}),
        ({"epr_encounter_id": "EPR-8"}, {"epr_encounter_id": None}),
    ],
    ids=["reopen", "undelete", "make-local"],
)
def test_patch_that_gives_a_patient_two_open_local_encounters_is_409(client, db, earlier, change):
    other = create(client, **earlier)
    open_local = create(client, patient_uuid=other["patient_uuid"])
    before = snapshot(db)
    assert_error(patch(client, other, change), 409, open_local["patient_uuid"], open_local["uuid"])
    assert snapshot(db) == before


def test_undeleting_onto_a_used_epr_id_is_409(client):
    deleted = create(client, epr_encounter_id="EPR-9", deleted_at="2018-01-02T00:00:00Z")
    holder = create(client, epr_encounter_id="EPR-9")
    assert_error(patch(client, deleted, {"deleted_at": None}), 409, "EPR-9", holder["uuid"])


# --- bad requests ---------------------------------------------------------------------------


def test_patch_of_an_unknown_encounter_is_404(client):
    unknown = new_uuid()
    assert_error(client.patch(encounter_url(unknown), json={}, headers=auth()), 404, unknown)
    assert client.patch(encounter_url("123"), json={}, headers=auth()).status_code == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"admitted_at": None}, "admitted_at"),
        ({"location_uuid": None}, "location_uuid"),
        ({"score_system": None}, "score_system"),
        ({"patient_record_uuid": "nope"}, "patient_record_uuid"),
        ({"discharged_at": "2018-01-02T00:00:00"}, "discharged_at"),
        ({"spo2_scale": "2"}, "spo2_scale"),
        ({"encounter_type": "nul\x00inside"}, "encounter_type"),
        ({"patient_uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}, "patient_uuid"),
        ({"location_history": []}, "location_history"),
        ([], "object"),
    ],
)
def test_patch_refuses_bad_bodies_and_writes_nothing(client, db, body, fragment):
    encounter = create(client)
    before = snapshot(db)
    assert_error(patch(client, encounter, body, EWS_EDITOR), 400, fragment)
    assert snapshot(db) == before


def test_patch_without_a_body_is_400(client):
    encounter = create(client)
    assert_error(client.patch(encounter_url(encounter["uuid"]), headers=auth()), 400, "body is required")


def test_patch_refuses_query_parameters(client):
    encounter = create(client)
    response = client.patch(encounter_url(encounter["uuid"]), params={"compact": "true"}, json={}, headers=auth())
    assert_error(response, 400, "compact")


@pytest.mark.parametrize(("headers", "status"), [({}, 401), (auth(READ_SCOPE), 403)])
def test_patch_needs_the_write_scope(client, headers, status):
    encounter = create(client)
    assert patch(client, encounter, {}, headers).status_code == status


# --- DELETE: unlink from a parent -----------------------------------------------------------


def test_delete_unlinks_the_encounter_from_the_named_parent(client, db):
    parent = create(client, epr_encounter_id="EPR-P")
    child = create(client, epr_encounter_id="EPR-C", child_of_encounter_uuid=parent["uuid"])
    clear_outbox(db)
    response = unlink(client, child, parent["uuid"], auth(READ_SCOPE, WRITE_SCOPE, system_id="unlinker"))
    assert response.status_code == 200
    unlinked = response.json()
    assert set(unlinked) == FULL_KEYS
    assert unlinked == {key: value for key, value in child.items() if key != "child_of_encounter_uuid"}
    assert modified(db, child)[1] == "unlinker"
    assert outbox(db) == [("dhos.DM000007", {"encounter_id": child["uuid"]}, child["uuid"])]


@pytest.mark.parametrize("has_parent", [True, False], ids=["other-parent", "no-parent"])
def test_delete_naming_another_parent_changes_nothing(client, db, has_parent):
    parent = create(client, epr_encounter_id="EPR-P")
    child = create(
        client, epr_encounter_id="EPR-C", **({"child_of_encounter_uuid": parent["uuid"]} if has_parent else {})
    )
    before = snapshot(db)
    response = unlink(client, child, new_uuid())
    assert response.status_code == 200
    assert response.json() == child
    assert snapshot(db) == before


def test_delete_that_would_give_a_second_open_local_encounter_is_409(client, db):
    parent = create(client, epr_encounter_id="EPR-P")
    child = create(client, patient_uuid=parent["patient_uuid"], child_of_encounter_uuid=parent["uuid"])
    open_local = create(client, patient_uuid=parent["patient_uuid"])
    before = snapshot(db)
    assert_error(unlink(client, child, parent["uuid"]), 409, open_local["uuid"])
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (None, 400, "body is required"),
        ({}, 400, "child_of_encounter_uuid"),
        ({"child_of_encounter_uuid": "x"}, 400, "child_of_encounter_uuid"),
        ({"child_of_encounter_uuid": None}, 400, "child_of_encounter_uuid"),
        ({"child_of_encounter_uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "x": 1}, 400, "x"),
    ],
)
def test_delete_refuses_bad_bodies(client, body, status, fragment):
    encounter = create(client)
    response = client.request("DELETE", encounter_url(encounter["uuid"]), json=body, headers=auth())
    assert_error(response, status, fragment)


def test_delete_of_an_unknown_encounter_is_404(client):
    unknown = new_uuid()
    response = client.request(
        "DELETE", encounter_url(unknown), json={"child_of_encounter_uuid": new_uuid()}, headers=auth()
    )
    assert_error(response, 404, unknown)


@pytest.mark.parametrize(("headers", "status"), [({}, 401), (auth(READ_SCOPE), 403)])
def test_delete_needs_the_write_scope(client, headers, status):
    encounter = create(client)
    assert unlink(client, encounter, new_uuid(), headers).status_code == status


def test_delete_refuses_query_parameters(client):
    encounter = create(client)
    url = encounter_url(encounter["uuid"])
    body = {"child_of_encounter_uuid": new_uuid()}
    response = client.request("DELETE", url, params={"force": "true"}, json=body, headers=auth())
    assert_error(response, 400, "force")
