"""Versions and conditional requests: `ETag: "<version>"` on every answer of one encounter,
If-None-Match on GET by id (304), If-Match on PATCH and DELETE (412, nothing written), and
concurrent PATCHes with the same If-Match (exactly one wins). The version is never a JSON key."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.api.test_encounter_writes import (
    ENCOUNTERS,
    assert_error,
    create,
    create_body,
    encounter_url,
    new_uuid,
    outbox,
    snapshot,
)
from tests.api.test_encounter_writes_merge import MERGE, SYSTEM, merge_body
from tests.api.test_write_concurrency import in_parallel
from tests.helpers import auth


def version_of(client, encounter_uuid: str) -> str:
    response = client.get(encounter_url(encounter_uuid), params={"show_deleted": "true"}, headers=auth(READ_SCOPE))
    assert response.status_code == 200, response.text
    return response.headers["etag"]


def patch(client, encounter_uuid: str, body: dict, **headers: str):
    return client.patch(encounter_url(encounter_uuid), json=body, headers=auth() | headers)


def unlink(client, encounter_uuid: str, parent: str, **headers: str):
    body = {"child_of_encounter_uuid": parent}
    return client.request("DELETE", encounter_url(encounter_uuid), json=body, headers=auth() | headers)


# --- the version -------------------------------------------------------------------------------


def test_version_1_at_creation_then_1_more_per_change_and_not_for_a_patch_that_changes_nothing(client, db):
    response = client.post(ENCOUNTERS, json=create_body(), headers=auth())
    assert response.headers["etag"] == '"1"' and "version" not in response.json()
    encounter = response.json()["uuid"]
    assert version_of(client, encounter) == '"1"'
    assert patch(client, encounter, {"encounter_type": "DAYCASE"}).headers["etag"] == '"2"'
    assert patch(client, encounter, {}).headers["etag"] == '"2"'  # nothing changed (modified did)
    assert patch(client, encounter, {"encounter_type": "DAYCASE"}).headers["etag"] == '"2"'
    # A move writes the row twice (its history entry, then the row): one version.
    assert patch(client, encounter, {"location_uuid": new_uuid()}).headers["etag"] == '"3"'
    editor = auth(READ_SCOPE, WRITE_SCOPE, clinician_id="c-1", can_edit_ews=True)
    score_change = client.patch(encounter_url(encounter), json={"score_system": "other"}, headers=editor)
    assert score_change.headers["etag"] == '"4"'
    history = client.get(encounter_url(encounter), headers=auth()).json()["score_system_history"][0]["uuid"]
    corrected = client.patch(
        f"/dhos/v1/score_system_history/{history}", json={"changed_time": "2018-01-01T00:00:00Z"}, headers=SYSTEM
    )
    assert corrected.status_code == 200 and version_of(client, encounter) == '"5"'  # its full form changed
    deleted = patch(client, encounter, {"deleted_at": "2018-01-05T00:00:00Z"})
    assert deleted.headers["etag"] == '"6"' and version_of(client, encounter) == '"6"'
    assert db.execute("SELECT version FROM encounters.encounter").fetchall() == [(6,)]


def test_unlink_and_merge_make_versions_and_an_unlink_that_changes_nothing_does_not(client):
    record = new_uuid()
    parent = create(client, patient_record_uuid=record, epr_encounter_id="EPR-1")["uuid"]
    child = create(client, patient_record_uuid=record, child_of_encounter_uuid=parent, epr_encounter_id="EPR-2")["uuid"]
    assert unlink(client, child, parent).headers["etag"] == '"2"'
    assert unlink(client, child, parent).headers["etag"] == '"2"'  # no longer its parent: nothing changes
    assert client.post(MERGE, json=merge_body(record), headers=auth()).json() == {"total": 2}
    assert (version_of(client, parent), version_of(client, child)) == ('"2"', '"3"')


def test_a_statement_cannot_set_the_version(client, db):
    encounter = create(client)["uuid"]
    db.execute("UPDATE encounters.encounter SET version = 40, versioned_xid = '5'")
    assert version_of(client, encounter) == '"1"'


def test_answers_without_the_headers_are_as_before(client):
    encounter = create(client)
    response = client.get(encounter_url(encounter["uuid"]), headers=auth())
    assert response.json() == encounter and set(response.headers) >= {"etag", "content-type"}


# --- If-None-Match -------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ['"1"', "*", ' "7", "1" ', 'W/"1"', '"x", "1"'])
def test_if_none_match_naming_the_version_is_304_with_no_body(client, header):
    encounter = create(client)["uuid"]
    response = client.get(encounter_url(encounter), headers=auth() | {"If-None-Match": header})
    assert response.status_code == 304 and response.content == b""
    assert response.headers["etag"] == '"1"'


@pytest.mark.parametrize("header", ['"2"', 'W/"0"', '"x"', '"01"', '"1.0"'])
def test_if_none_match_naming_another_version_is_the_encounter(client, header):
    encounter = create(client)
    response = client.get(encounter_url(encounter["uuid"]), headers=auth() | {"If-None-Match": header})
    assert response.status_code == 200 and response.json() == encounter


@pytest.mark.parametrize("header", ["1", '"1', "W/1", '"1" "2"', ",", "**", '"1 "'])
def test_a_malformed_condition_is_a_400_naming_the_header(client, header):
    encounter = create(client)["uuid"]
    answer = client.get(encounter_url(encounter), headers=auth() | {"If-None-Match": header})
    assert_error(answer, 400, "If-None-Match")
    assert_error(patch(client, encounter, {}, **{"If-Match": header}), 400, "If-Match")


def test_a_condition_on_an_encounter_that_does_not_exist_is_a_404(client):
    missing = new_uuid()
    assert_error(client.get(encounter_url(missing), headers=auth() | {"If-None-Match": "*"}), 404, "not found")
    assert_error(patch(client, missing, {}, **{"If-Match": "*"}), 404, "not found")
    assert_error(unlink(client, missing, new_uuid(), **{"If-Match": '"1"'}), 404, "not found")


# --- If-Match ------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ['"1"', "*", '"3", "1"'])
def test_if_match_naming_the_version_writes(client, header):
    encounter = create(client)["uuid"]
    response = patch(client, encounter, {"encounter_type": "DAYCASE"}, **{"If-Match": header})
    assert response.status_code == 200 and response.headers["etag"] == '"2"'


@pytest.mark.parametrize("header", ['"2"', 'W/"1"', '"x"', '"0"', '"01"'])
def test_if_match_naming_another_version_is_412_and_writes_nothing(client, db, header):
    encounter = create(client)["uuid"]
    before = snapshot(db)
    for body in ({"location_uuid": new_uuid(), "encounter_type": "DAYCASE"}, {"score_system": "other"}):
        # (the second would be refused without can_edit_ews, and audited: not even that is written)
        headers = auth(READ_SCOPE, WRITE_SCOPE, clinician_id="c-1") | {"If-Match": header}
        response = client.patch(encounter_url(encounter), json=body, headers=headers)
        assert_error(response, 412, f"encounter {encounter} is at version 1")
    assert_error(unlink(client, encounter, new_uuid(), **{"If-Match": header}), 412, "is at version 1")
    assert snapshot(db) == before


def test_unlink_with_if_match(client, db):
    parent = create(client)["uuid"]
    child = create(client, child_of_encounter_uuid=parent)["uuid"]
    before = snapshot(db)
    assert_error(unlink(client, child, parent, **{"If-Match": '"2"'}), 412, "is at version 1")
    assert snapshot(db) == before
    assert unlink(client, child, parent, **{"If-Match": '"1"'}).headers["etag"] == '"2"'


def test_concurrent_patches_with_the_same_if_match_exactly_one_wins(live_server, db):
    with httpx.Client(base_url=live_server, headers=auth()) as http:
        encounter = http.post(ENCOUNTERS, json=create_body()).json()["uuid"]
    db.execute("DELETE FROM encounters.outbox")
    locations = [new_uuid() for _ in range(10)]
    responses = in_parallel(
        live_server,
        [
            lambda http, location=location: http.patch(
                encounter_url(encounter), json={"location_uuid": location}, headers={"If-Match": '"1"'}
            )
            for location in locations
        ],
    )
    assert Counter(response.status_code for response in responses) == {200: 1, 412: 9}
    (winner,) = [response for response in responses if response.status_code == 200]
    assert winner.headers["etag"] == '"2"'
    assert {r.json()["message"] for r in responses if r.status_code == 412} == {
        f"encounter {encounter} is at version 2, not the version If-Match names; read it again and retry"
    }
    # Only the winner wrote: one history entry, one version kept, its events, its location.
    assert db.execute("SELECT count(*) FROM encounters.location_history").fetchone() == (1,)
    assert db.execute("SELECT version FROM encounters.encounter_history ORDER BY 1").fetchall() == [(1,), (2,)]
    assert [key for key, _body, _about in outbox(db)] == ["dhos.DM000007", "dhos.34837004"]
    assert db.execute("SELECT location_uuid::text, version FROM encounters.encounter").fetchone() == (
        winner.json()["location_uuid"],
        2,
    )
