"""Each write request (and each by-id read of the write routes) runs one SQL statement: the
function call that checks, writes, records the events and builds the answer. Counted by the
server's own statement log, as in test_encounter_reads_statements."""

from __future__ import annotations

from pathlib import Path

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.api.test_encounter_reads_statements import logged_client, statements_during  # noqa: F401 (fixture)
from tests.api.test_encounter_writes import ENCOUNTERS, create, create_body, encounter_url, new_uuid
from tests.helpers import auth

EWS_EDITOR = auth(READ_SCOPE, WRITE_SCOPE, clinician_id="c", can_edit_ews=True)
SYSTEM = auth(READ_SCOPE, WRITE_SCOPE, system_id="dhos-robot")


def test_one_statement_per_write_request_whatever_it_does(pg_server, logged_client):  # noqa: F811
    logfile = Path(pg_server.logfile)
    parent = create(logged_client, epr_encounter_id="EPR-P")
    child = create(logged_client, epr_encounter_id="EPR-C", child_of_encounter_uuid=parent["uuid"])
    url = encounter_url(child["uuid"])
    history = logged_client.patch(url, json={"spo2_scale": 2}, headers=EWS_EDITOR).json()["score_system_history"]
    merge = {
        "child_record_uuid": child["patient_record_uuid"],
        "parent_record_uuid": new_uuid(),
        "parent_patient_uuid": new_uuid(),
        "message_uuid": new_uuid(),
    }
    requests = {
        "create": (200, "POST", ENCOUNTERS, {"json": create_body()}),
        "create, duplicate": (409, "POST", ENCOUNTERS, {"json": create_body(epr_encounter_id="EPR-P")}),
        "get": (200, "GET", url, {}),
        "update with every history": (
            200,
            "PATCH",
            url,
            {"json": {"location_uuid": new_uuid(), "score_system": "meows"}, "headers": EWS_EDITOR},
        ),
        "update, refused and audited": (403, "PATCH", url, {"json": {"spo2_scale": 1}}),
        "update, unknown parent": (422, "PATCH", url, {"json": {"child_of_encounter_uuid": new_uuid()}}),
        "unlink": (200, "DELETE", url, {"json": {"child_of_encounter_uuid": parent["uuid"]}}),
        "score history": (
            200,
            "PATCH",
            f"/dhos/v1/score_system_history/{history[0]['uuid']}",
            {"json": {"changed_time": "2019-01-01T00:00:00Z"}, "headers": SYSTEM},
        ),
        "merge": (200, "POST", "/dhos/v1/encounter/merge", {"json": merge}),
        "merge history": (200, "GET", f"{url}/merge_history", {}),
    }
    for name, (status, method, path, arguments) in requests.items():
        responses = []

        def send() -> None:  # called by statements_during, within this iteration
            responses.append(logged_client.request(method, path, **({"headers": auth()} | arguments)))  # noqa: B023

        assert statements_during(logfile, send) == 1, name
        assert responses[0].status_code == status, (name, responses[0].text)
