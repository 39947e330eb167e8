"""spo2_scale: whether the caller may ask for a change is judged before the value is.

The SpO2 scale is 1 or 2 (a deliberate change from the original service, which stored any small
integer). A caller without can_edit_ews that asks for any other scale than the encounter has (on
create: than 1) is answered 403, whatever the value: as in the original, where such a caller
sending 3 got 403. A PATCH so refused records its ews_change_failure audit event, as every refused
score change does; a create so refused writes nothing. A caller who may edit and asks for a
value that is not a scale gets 400 and nothing is written. The decoder used to refuse every value
but 1 and 2 with 400 before the permission was looked at.
"""

from __future__ import annotations

import pytest

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.api.test_encounter_writes import ENCOUNTERS, assert_error, create, create_body, outbox, snapshot
from tests.api.test_encounter_writes_update import EWS_EDITOR, patch, patched
from tests.helpers import auth

CLINICIAN = auth(READ_SCOPE, WRITE_SCOPE, clinician_id="clinician-1")  # no can_edit_ews
NOT_SCALES = [3, 0, -1, 255, 32768, 2**63]


@pytest.mark.parametrize("value", [2, *NOT_SCALES])
def test_create_asking_for_a_scale_without_can_edit_ews_is_403_and_writes_nothing(client, db, value):
    before = snapshot(db)
    response = client.post(ENCOUNTERS, json=create_body(spo2_scale=value), headers=CLINICIAN)
    assert_error(response, 403, f"spo2_scale {value}", "can_edit_ews")
    assert snapshot(db) == before


@pytest.mark.parametrize("value", NOT_SCALES)
def test_create_with_a_value_that_is_not_a_scale_is_400_for_a_caller_who_may_edit(client, db, value):
    before = snapshot(db)
    response = client.post(ENCOUNTERS, json=create_body(spo2_scale=value), headers=EWS_EDITOR)
    assert_error(response, 400, f"spo2_scale must be 1 or 2, not {value}")
    assert snapshot(db) == before


@pytest.mark.parametrize("value", [2, *NOT_SCALES])
def test_patch_asking_for_a_scale_without_can_edit_ews_is_403_and_only_audited(client, db, value):
    encounter = create(client)
    db.execute("DELETE FROM encounters.outbox")
    before = snapshot(db)
    response = patch(client, encounter, {"spo2_scale": value, "encounter_type": "X"}, CLINICIAN)
    assert_error(response, 403, "can_edit_ews")
    [(key, event, about)] = outbox(db)
    assert (key, event["event_type"], about) == ("dhos.34837004", "ews_change_failure", encounter["uuid"])
    assert event["event_data"]["previous_spo2_scale"] == 1
    assert event["event_data"]["new_spo2_scale"] == value
    db.execute("DELETE FROM encounters.outbox")
    assert snapshot(db) == before


@pytest.mark.parametrize("value", NOT_SCALES)
def test_patch_with_a_value_that_is_not_a_scale_is_400_for_a_caller_who_may_edit(client, db, value):
    encounter = create(client)
    before = snapshot(db)
    response = patch(client, encounter, {"spo2_scale": value, "encounter_type": "X"}, EWS_EDITOR)
    assert_error(response, 400, f"spo2_scale must be 1 or 2, not {value}")
    assert snapshot(db) == before


def test_the_scales_themselves_still_work(client):
    assert create(client, spo2_scale=2, headers=EWS_EDITOR)["spo2_scale"] == 2
    encounter = create(client, spo2_scale=1, headers=CLINICIAN)
    assert (
        patched(client, encounter, {"spo2_scale": 1}, CLINICIAN)["spo2_scale"] == 1
    )  # no change: no permission needed
    assert patched(client, encounter, {"spo2_scale": 2}, EWS_EDITOR)["spo2_scale"] == 2
    assert patched(client, encounter, {"spo2_scale": 2}, CLINICIAN)["spo2_scale"] == 2
