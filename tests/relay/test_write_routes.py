"""Every write route, through HTTP with `serve --relay`'s relay running: the messages it recorded
arrive on a queue bound to the exchange, exactly (routing key, body bytes, message id), in order
per encounter."""

from __future__ import annotations

import asyncio
import json

from litestar.testing import TestClient

from encounters_service.app import create_app
from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.api.test_encounter_writes import create, encounter_url, new_uuid
from tests.helpers import as_app, auth
from tests.relay.support import Consumer, eventually, waiting

EWS_EDITOR = auth(READ_SCOPE, WRITE_SCOPE, clinician_id="clinician-ews", can_edit_ews=True)
NURSE = auth(READ_SCOPE, WRITE_SCOPE, clinician_id="nurse")
SYSTEM = auth(READ_SCOPE, WRITE_SCOPE, system_id="dhos-robot")


def every_write(client) -> tuple[dict, dict, str]:
    """One call of each write route; returns the parent, the child and the new location."""

    def patch(encounter: dict, body: dict, headers: dict):
        return client.patch(encounter_url(encounter["uuid"]), json=body, headers=headers)

    parent = create(client)
    child = create(client, child_of_encounter_uuid=parent["uuid"])
    ward = new_uuid()
    assert patch(parent, {"location_uuid": ward}, auth()).status_code == 200
    history = patch(parent, {"spo2_scale": 2}, EWS_EDITOR).json()["score_system_history"][0]
    assert patch(parent, {"score_system": "meows"}, NURSE).status_code == 403  # refused, audited
    unlink = {"child_of_encounter_uuid": parent["uuid"]}
    assert client.request("DELETE", encounter_url(child["uuid"]), json=unlink, headers=auth()).status_code == 200
    merge = {
        "child_record_uuid": child["patient_record_uuid"],
        "parent_record_uuid": new_uuid(),
        "parent_patient_uuid": new_uuid(),
        "message_uuid": new_uuid(),
    }
    assert client.post("/dhos/v1/encounter/merge", json=merge, headers=auth()).json() == {"total": 1}
    changed_time = {"changed_time": "2018-01-05T00:00:00.000Z"}
    assert (
        client.patch(f"/dhos/v1/score_system_history/{history['uuid']}", json=changed_time, headers=SYSTEM).status_code
        == 200
    )
    return parent, child, ward


def test_every_write_route_delivers_exactly_the_messages_it_recorded(db, fresh_database, relay_settings):
    async def scenario():
        async with Consumer(relay_settings.rabbitmq_exchange) as consumer:
            with TestClient(create_app(relay_settings, as_app(fresh_database), relay=True)) as client:
                written = every_write(client)
                await consumer.wait_for(db.execute("SELECT count(*) FROM encounters.outbox").fetchone()[0])
                await eventually(lambda: waiting(db) == 0, "the relay to mark every message published")
            return written, consumer.messages

    (parent, child, ward), received = asyncio.run(scenario())
    recorded = db.execute(
        "SELECT encounter_uuid::text, routing_key, body::text, message_id::text FROM encounters.outbox ORDER BY id"
    ).fetchall()
    assert len(received) == len(recorded)
    for encounter in (parent, child):
        expected = [(key, body, message_id) for uuid, key, body, message_id in recorded if uuid == encounter["uuid"]]
        assert [
            (m.routing_key, m.body.decode(), m.message_id) for m in received if about(m) == encounter["uuid"]
        ] == expected

    def kinds(encounter):
        return [
            (m.routing_key, json.loads(m.body).get("event_type")) for m in received if about(m) == encounter["uuid"]
        ]

    assert kinds(parent) == [
        ("dhos.DM000007", None),  # create
        ("dhos.DM000007", None),  # move
        ("dhos.34837004", "encounter_modified"),
        ("dhos.34837004", "score_system_changed"),  # score change
        ("dhos.DM000005", None),
        ("dhos.DM000007", None),
        ("dhos.34837004", "encounter_modified"),
        ("dhos.34837004", "ews_change_failure"),  # refused score change
    ]
    assert kinds(child) == [("dhos.DM000007", None)] * 3  # create, unlink, merge
    move = [json.loads(m.body) for m in received if about(m) == parent["uuid"]][1:3]
    assert move == [
        {"encounter_id": parent["uuid"]},
        {
            "event_type": "encounter_modified",
            "event_data": {
                "clinician_id": "clinician-1",
                "encounter_id": parent["uuid"],
                "modifications": [{"field": "location_uuid", "old": parent["location_uuid"], "new": ward}],
            },
        },
    ]


def about(message) -> str:
    """The encounter a message is about, wherever its shape keeps it."""
    body = json.loads(message.body)
    if "encounter_id" in body:
        return body["encounter_id"]
    if "event_data" in body:
        return body["event_data"]["encounter_id"]
    return body["actions"][0]["data"]["encounter"]["uuid"]
