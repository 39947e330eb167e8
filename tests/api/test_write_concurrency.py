"""Concurrent writes over real parallel HTTP connections (the app served by uvicorn, one client
per thread, all released at once): the database's row locks and unique indexes decide who wins,
not timing."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.api.test_encounter_writes import ENCOUNTERS, create_body, encounter_url, new_uuid, outbox
from tests.helpers import auth

Request = Callable[[httpx.Client], httpx.Response]


def in_parallel(base_url: str, requests: list[Request]) -> list[httpx.Response]:
    """Send every request from its own connection, all starting together."""
    start = threading.Barrier(len(requests))

    def send(request: Request) -> httpx.Response:
        with httpx.Client(base_url=base_url, headers=auth(), timeout=30) as http:
            http.get("/running")  # connect before the start line
            start.wait()
            return request(http)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def statuses(responses: list[httpx.Response]) -> Counter:
    return Counter(response.status_code for response in responses)


def create_request(body: dict) -> Request:
    return lambda http: http.post(ENCOUNTERS, json=body)


def test_twenty_simultaneous_local_creates_for_one_patient_make_one_encounter(live_server, db):
    patient = new_uuid()
    responses = in_parallel(live_server, [create_request(create_body(patient_uuid=patient)) for _ in range(20)])
    assert statuses(responses) == {200: 1, 409: 19}
    (winner,) = [r.json() for r in responses if r.status_code == 200]
    expected = f"patient {patient} already has an open local encounter: {winner['uuid']}"
    assert {r.json()["message"] for r in responses if r.status_code == 409} == {expected}
    assert db.execute("SELECT count(*) FROM encounters.encounter").fetchone() == (1,)
    assert outbox(db) == [("dhos.DM000007", {"encounter_id": winner["uuid"]}, winner["uuid"])]


def test_twenty_simultaneous_creates_with_one_epr_id_make_one_encounter(live_server, db):
    responses = in_parallel(live_server, [create_request(create_body(epr_encounter_id="EPR-RACE")) for _ in range(20)])
    assert statuses(responses) == {200: 1, 409: 19}
    (winner,) = [r.json() for r in responses if r.status_code == 200]
    expected = f"epr_encounter_id EPR-RACE is already used by encounter {winner['uuid']}, which is not deleted"
    assert {r.json()["message"] for r in responses if r.status_code == 409} == {expected}
    assert db.execute("SELECT count(*) FROM encounters.encounter").fetchone() == (1,)
    assert len(outbox(db)) == 1


def test_twenty_simultaneous_moves_leave_a_location_history_without_gaps_or_duplicates(live_server, db):
    with httpx.Client(base_url=live_server, headers=auth()) as http:
        encounter = http.post(ENCOUNTERS, json=create_body()).json()
    targets = [new_uuid() for _ in range(20)]
    url = encounter_url(encounter["uuid"])
    responses = in_parallel(
        live_server, [lambda http, t=t: http.patch(url, json={"location_uuid": t}) for t in targets]
    )
    assert statuses(responses) == {200: 20}

    with httpx.Client(base_url=live_server, headers=auth()) as http:
        final = http.get(url).json()
    history = final["location_history"]
    assert len(history) == 20
    assert history[0]["location_uuid"] == encounter["location_uuid"]
    assert history[0]["arrived_at"] == encounter["admitted_at"]
    for earlier, later in itertools.pairwise(history):
        assert later["arrived_at"] == earlier["departed_at"]
        assert later["departed_at"] >= later["arrived_at"]
    visited = [entry["location_uuid"] for entry in history[1:]] + [final["location_uuid"]]
    assert sorted(visited) == sorted(targets)

    # Each move started from where the previous one left the encounter: no update was lost.
    moves = [body["event_data"]["modifications"] for _, body, _ in outbox(db) if body.get("event_type")]
    assert [(m["old"], m["new"]) for (m,) in moves] == [
        (entry["location_uuid"], after) for entry, after in zip(history, visited, strict=True)
    ]


def test_ten_simultaneous_identical_merges_move_each_encounter_once(live_server, db):
    record = new_uuid()
    with httpx.Client(base_url=live_server, headers=auth()) as http:
        first = http.post(ENCOUNTERS, json=create_body(patient_record_uuid=record, epr_encounter_id="M-1")).json()
        patient = first["patient_uuid"]
        for epr_id in ("M-2", "M-3"):
            http.post(
                ENCOUNTERS, json=create_body(patient_record_uuid=record, patient_uuid=patient, epr_encounter_id=epr_id)
            )
    db.execute("DELETE FROM encounters.outbox")
    body = {
        "child_record_uuid": record,
        "parent_record_uuid": new_uuid(),
        "parent_patient_uuid": new_uuid(),
        "message_uuid": new_uuid(),
    }
    responses = in_parallel(live_server, [lambda http: http.post("/dhos/v1/encounter/merge", json=body)] * 10)
    assert statuses(responses) == {200: 10}
    assert sorted(r.json()["total"] for r in responses) == [0] * 9 + [3]
    history = db.execute("SELECT encounter_uuid, record_uuid, message_uuid FROM encounters.merge_history").fetchall()
    assert len(history) == 3
    assert {(str(r), str(m)) for _, r, m in history} == {(record, body["message_uuid"])}
    assert len({e for e, _, _ in history}) == 3
    assert [key for key, _, _ in outbox(db)] == ["dhos.DM000007"] * 3
    assert db.execute(
        "SELECT count(*) FROM encounters.encounter WHERE patient_record_uuid = %s AND patient_uuid = %s",
        [body["parent_record_uuid"], body["parent_patient_uuid"]],
    ).fetchone() == (3,)
