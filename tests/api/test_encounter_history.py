"""GET /dhos/v1/encounter/{id}/history and …/history/{version}: every version of an encounter, as it
was, written in the transaction of each change."""

from __future__ import annotations

import json

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.api.test_encounter_writes import assert_error, create, encounter_url, new_uuid
from tests.api.test_encounter_writes_merge import MERGE, merge_body
from tests.helpers import auth


def history(client, encounter_uuid: str) -> list[dict]:
    response = client.get(f"{encounter_url(encounter_uuid)}/history", headers=auth(READ_SCOPE))
    assert response.status_code == 200, response.text
    return response.json()


def expanded(db, encounter_uuid: str) -> dict:
    [(document,)] = db.execute(
        "SELECT encounters_api.encounter_json(e, FALSE, TRUE) FROM encounters.encounter AS e WHERE e.uuid = %s",
        [encounter_uuid],
    )
    return json.loads(document)


def test_the_history_after_a_create_three_patches_a_merge_and_a_delete(client, db):
    record = new_uuid()
    encounter = create(client, patient_record_uuid=record)["uuid"]
    states = [expanded(db, encounter)]
    patches = [
        {"location_uuid": new_uuid()},
        {"encounter_type": "DAYCASE"},
        {"discharged_at": "2018-01-03T00:00:00Z"},
    ]
    for body in patches:
        assert client.patch(encounter_url(encounter), json=body, headers=auth()).status_code == 200
        states.append(expanded(db, encounter))
    assert client.patch(encounter_url(encounter), json={}, headers=auth()).status_code == 200  # no new version
    merge = merge_body(record)
    assert client.post(MERGE, json=merge, headers=auth()).json() == {"total": 1}
    states.append(expanded(db, encounter))
    deleted = client.patch(encounter_url(encounter), json={"deleted_at": "2018-01-04T00:00:00Z"}, headers=auth())
    assert deleted.status_code == 200
    states.append(expanded(db, encounter))

    versions = history(client, encounter)
    assert [v["version"] for v in versions] == [1, 2, 3, 4, 5, 6]
    assert [v["encounter"] for v in versions] == states
    assert [(v["modified"], v["modified_by"]) for v in versions] == [
        (state["modified"], state["modified_by"]) for state in states
    ]
    assert versions[4]["encounter"]["patient_record_uuid"] == merge["parent_record_uuid"]
    assert versions[5]["encounter"]["deleted_at"] == "2018-01-04T00:00:00.000Z"
    one = client.get(f"{encounter_url(encounter)}/history/2", headers=auth(READ_SCOPE))
    assert one.status_code == 200 and one.json() == versions[1]


def test_an_unknown_version_or_encounter_is_a_404(client):
    encounter = create(client)["uuid"]
    for version in (0, 2, 99999999999):
        answer = client.get(f"{encounter_url(encounter)}/history/{version}", headers=auth())
        assert_error(answer, 404, f"encounter {encounter} has no version {version}")
    missing = new_uuid()
    assert_error(client.get(f"{encounter_url(missing)}/history", headers=auth()), 404, "not found")
    assert_error(client.get(f"{encounter_url(missing)}/history/1", headers=auth()), 404, "not found")
    assert client.get(f"{encounter_url(encounter)}/history/x", headers=auth()).status_code in (400, 404)


def test_an_encounter_changed_last_before_the_history_shows_its_current_version(client, db):
    encounter = create(client)["uuid"]
    db.execute("DELETE FROM encounters.encounter_history")  # as if written before migration 0006
    assert [(v["version"], v["encounter"]) for v in history(client, encounter)] == [(1, expanded(db, encounter))]
    assert client.patch(encounter_url(encounter), json={"encounter_type": "X"}, headers=auth()).status_code == 200
    assert [v["version"] for v in history(client, encounter)] == [1, 2]


def test_a_refused_write_keeps_no_version(client, db):
    encounter = create(client)["uuid"]
    conditional = auth() | {"If-Match": '"7"'}
    assert client.patch(encounter_url(encounter), json={"encounter_type": "X"}, headers=conditional).status_code == 412
    refused = client.patch(
        encounter_url(encounter),
        json={"score_system": "other"},
        headers=auth(READ_SCOPE, WRITE_SCOPE, clinician_id="c-1"),
    )
    assert refused.status_code == 403
    assert db.execute("SELECT version FROM encounters.encounter_history").fetchall() == [(1,)]
