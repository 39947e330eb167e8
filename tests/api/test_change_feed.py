"""GET /dhos/v2/encounters/changes: the change feed, its cursor, and its promise under concurrent
writers — a consumer that pages to the end holds the latest committed state of every encounter,
and never a state of a rolled-back transaction (sql/queries/encounters/changes.sql says why)."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from uuid import UUID

import httpx
import psycopg
import pytest

from encounters_service import cursors
from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from encounters_service.db import connect_sync
from tests.api.test_encounter_writes import assert_error, create, create_body, encounter_url, new_uuid
from tests.api.test_encounter_writes_merge import MERGE, merge_body
from tests.helpers import TEST_SETTINGS, auth

CHANGES = "/dhos/v2/encounters/changes"


def current_states(db) -> dict[str, dict]:
    """Every encounter as the feed should show it now: the expanded full form."""
    rows = db.execute("SELECT e.uuid, encounters_api.encounter_json(e, FALSE, TRUE) FROM encounters.encounter AS e")
    return {str(uuid): json.loads(document) for uuid, document in rows}


def page(http, cursor: str | None = None, **params: object) -> dict:
    response = http.get(CHANGES, params={**({"cursor": cursor} if cursor else {}), **params}, headers=auth(READ_SCOPE))
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["encounters", "cursor", "more"]
    return body


@dataclass
class Consumer:
    """Pages the feed as a sync client would: keeps the last state it was given of each encounter."""

    http: object
    limit: int = 100
    cursor: str | None = None
    held: dict[str, dict] = field(default_factory=dict)
    seen: list[dict] = field(default_factory=list)  # every state handed out, in order

    def read_page(self) -> dict:
        body = page(self.http, self.cursor, limit=self.limit)
        uuids = [encounter["uuid"] for encounter in body["encounters"]]
        assert len(uuids) == len(set(uuids)) <= self.limit  # at most once per page
        for encounter in body["encounters"]:
            self.held[encounter["uuid"]] = encounter
        self.seen += body["encounters"]
        self.cursor = body["cursor"]
        return body

    def read_to_end(self) -> list[dict]:
        """Every encounter handed out until `more` is false, in order."""
        read = []
        while True:
            body = self.read_page()
            read += body["encounters"]
            if not body["more"]:
                return read


def uuids(encounters: list[dict]) -> list[str]:
    return [encounter["uuid"] for encounter in encounters]


# --- what the feed shows ----------------------------------------------------------------------


def test_an_empty_feed_has_a_cursor_and_no_more(client):
    body = page(client)
    assert body["encounters"] == [] and body["more"] is False
    assert page(client, body["cursor"])["encounters"] == []


def test_every_change_in_order_each_encounter_once_in_its_current_expanded_form(client, db):
    first, second, third = create(client), create(client), create(client)
    consumer = Consumer(client)
    assert uuids(consumer.read_to_end()) == [first["uuid"], second["uuid"], third["uuid"]]

    moved = client.patch(encounter_url(first["uuid"]), json={"location_uuid": new_uuid()}, headers=auth())
    assert moved.status_code == 200
    deleted = client.patch(
        encounter_url(second["uuid"]), json={"deleted_at": "2018-01-03T00:00:00.000Z"}, headers=auth()
    )
    assert deleted.status_code == 200
    child = create(client, child_of_encounter_uuid=third["uuid"])
    again = client.patch(encounter_url(first["uuid"]), json={"discharged_at": "2018-01-04T00:00:00Z"}, headers=auth())
    assert again.status_code == 200

    # first changed twice since: once, after the others, as it is now; the deleted one and the child too.
    assert uuids(consumer.read_to_end()) == [second["uuid"], child["uuid"], first["uuid"]]
    assert consumer.held == current_states(db)
    assert consumer.held[second["uuid"]]["deleted_at"] == "2018-01-03T00:00:00.000Z"
    assert consumer.held[child["uuid"]]["child_of_encounter_uuid"] == third["uuid"]
    assert {"created_by", "modified", "modified_by"} <= set(consumer.held[first["uuid"]])
    assert page(client, consumer.cursor) == {"encounters": [], "cursor": consumer.cursor, "more": False}


def test_the_encounters_a_merge_moved_come_again(client, db):
    record = new_uuid()
    moved = [create(client, patient_record_uuid=record, epr_encounter_id=f"EPR-{n}") for n in range(2)]
    stays = create(client)
    consumer = Consumer(client)
    consumer.read_to_end()
    body = merge_body(record)
    assert client.post(MERGE, json=body, headers=auth()).json() == {"total": 2}
    assert sorted(uuids(consumer.read_to_end())) == sorted(e["uuid"] for e in moved)
    assert {consumer.held[e["uuid"]]["patient_record_uuid"] for e in moved} == {body["parent_record_uuid"]}
    assert consumer.held == current_states(db) and stays["uuid"] in consumer.held


def test_a_write_that_changes_nothing_a_reader_sees_keeps_the_encounters_place(client, db):
    encounter = create(client)
    consumer = Consumer(client)
    consumer.read_to_end()
    db.execute("UPDATE encounters.encounter SET changed_xid = '1', document = NULL")  # rendered again, the same
    assert consumer.read_to_end() == []
    noop = client.patch(encounter_url(encounter["uuid"]), json={}, headers=auth())  # sets modified
    assert noop.status_code == 200
    assert uuids(consumer.read_to_end()) == [encounter["uuid"]]


def test_pages_of_limit_encounters_with_more_until_the_end(client, db):
    created = [create(client)["uuid"] for _ in range(5)]
    consumer = Consumer(client, limit=2)
    pages = [consumer.read_page() for _ in range(3)]
    assert [uuids(p["encounters"]) for p in pages] == [created[:2], created[2:4], created[4:]]
    assert [p["more"] for p in pages] == [True, True, False]
    assert page(client, limit=1000)["more"] is False and len(page(client)["encounters"]) == 5  # default 100


# --- bad input ----------------------------------------------------------------------------------


def _tampered(cursor: str) -> list[str]:
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    return [flipped, cursor[:-1], cursor + "A", cursor + "!", "x", "", " " + cursor, "é" * 10]


def test_a_cursor_the_service_did_not_hand_out_is_a_400(client):
    create(client)
    cursor = page(client, limit=1)["cursor"]
    forged = cursors.encode("another key", cursors.Place("1", UUID(int=0)))
    for bad in [*_tampered(cursor), forged]:
        response = client.get(CHANGES, params={"cursor": bad}, headers=auth(READ_SCOPE))
        assert_error(response, 400, "cursor: not a cursor of this feed")


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "1.5", ""])
def test_a_limit_outside_1_to_1000_is_a_400(client, limit):
    assert_error(client.get(CHANGES, params={"limit": limit}, headers=auth(READ_SCOPE)), 400, "limit")


def test_the_feed_needs_the_read_scope(client):
    assert client.get(CHANGES).status_code == 401
    assert client.get(CHANGES, headers=auth(WRITE_SCOPE)).status_code == 403


def test_cursors_are_signed_with_the_settings_key():
    place = cursors.Place("42", UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6"))
    cursor = cursors.encode(TEST_SETTINGS.hs_key, place)
    assert cursors.decode(TEST_SETTINGS.hs_key, cursor) == place
    with pytest.raises(cursors.BadCursor):
        cursors.decode("another key", cursor)


# --- no gaps under concurrent writers -------------------------------------------------------------


def _patch_in_transaction(conn: psycopg.Connection, encounter_uuid: str, body: dict) -> None:
    conn.execute(
        "SELECT encounters_api.update_encounter(%s, %s, 'held-writer', FALSE)", [encounter_uuid, json.dumps(body)]
    )


def test_a_transaction_that_began_first_and_commits_last_is_not_skipped(client, db, fresh_database):
    encounters = [create(client)["uuid"] for _ in range(4)]
    consumer = Consumer(client)
    consumer.read_to_end()
    held_location, rolled_back_location = new_uuid(), new_uuid()
    with connect_sync(fresh_database) as held, connect_sync(fresh_database) as doomed:
        _patch_in_transaction(held, encounters[0], {"location_uuid": held_location})  # its transaction id first
        _patch_in_transaction(doomed, encounters[1], {"location_uuid": rolled_back_location})
        later = [create(client)["uuid"], encounters[2], encounters[3]]  # each commits after it began
        for uuid in later[1:]:
            assert client.patch(encounter_url(uuid), json={"encounter_type": "DAYCASE"}, headers=auth()).status_code
        modified_since = client.get("/dhos/v2/encounters", params={"modified_since": "2000-01-01"}, headers=auth())
        assert set(later) <= set(uuids(modified_since.json()))  # visible by timestamp already
        assert consumer.read_to_end() == []  # but not handed out: a transaction before them is open
        doomed.rollback()
        assert consumer.read_to_end() == []
        held.commit()
    # The held change first (its transaction began first), then the later ones; the rolled-back one never.
    assert uuids(consumer.read_to_end()) == [encounters[0], *later]
    assert consumer.held == current_states(db)
    assert consumer.held[encounters[0]]["location_uuid"] == held_location
    assert rolled_back_location not in json.dumps(consumer.seen)


def test_a_consumer_paging_all_along_ends_with_every_latest_committed_state(live_server, db, fresh_database):
    """Writers PATCH over HTTP while one transaction after another is held open (pg_sleep) and some
    roll back; a consumer pages the feed the whole time, three encounters a page."""
    with httpx.Client(base_url=live_server, timeout=30, headers=auth()) as http:
        encounters = [http.post("/dhos/v2/encounter", json=create_body()).json()["uuid"] for _ in range(8)]
    rolled_back = set()
    done = threading.Event()
    failures: list[BaseException] = []

    def guarded(work):
        def run():
            try:
                work()
            except BaseException as error:  # reported by the test below
                failures.append(error)

        return threading.Thread(target=run)

    def writer(seed: int) -> None:
        chooser = random.Random(seed)
        with httpx.Client(base_url=live_server, timeout=30, headers=auth()) as http:
            for _ in range(15):
                body = {"location_uuid": new_uuid(), "encounter_type": f"TYPE-{chooser.randrange(1000)}"}
                response = http.patch(encounter_url(chooser.choice(encounters)), json=body)
                assert response.status_code == 200, response.text

    def slow_transactions() -> None:
        chooser = random.Random(99)
        with connect_sync(fresh_database) as conn:
            for attempt in range(6):
                location = new_uuid()
                _patch_in_transaction(conn, chooser.choice(encounters), {"location_uuid": location})
                conn.execute("SELECT pg_sleep(0.15)")  # later transactions commit meanwhile
                if attempt % 2:
                    rolled_back.add(location)
                    conn.rollback()
                else:
                    conn.commit()

    def consume() -> None:
        with httpx.Client(base_url=live_server, timeout=30) as http:
            consumer = Consumer(http, limit=3)
            while not done.is_set():
                consumer.read_page()
                time.sleep(0.01)
            consumer.read_to_end()
            results["consumer"] = consumer

    results: dict[str, Consumer] = {}
    workers = [guarded(lambda seed=seed: writer(seed)) for seed in range(3)] + [guarded(slow_transactions)]
    reader = guarded(consume)
    for thread in [reader, *workers]:
        thread.start()
    for thread in workers:
        thread.join()
    done.set()
    reader.join()
    assert not failures, failures
    consumer = results["consumer"]
    assert consumer.held == current_states(db)
    assert len(rolled_back) == 3 and not any(location in json.dumps(consumer.seen) for location in rolled_back)
    assert len(consumer.seen) > len(encounters)  # it read along, not only at the end
