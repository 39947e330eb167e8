"""encounter.document: the stored full form that the ward lists read. Triggers keep it equal to
what encounters_api.encounter_json renders, whoever writes and however (every test's database
is also checked for stale documents when the test ends: tests/conftest.py)."""

from __future__ import annotations

import json
import uuid

import psycopg

from tests.sql.test_write_functions import create


def stored_and_rendered(db: psycopg.Connection, encounter_uuid: str) -> tuple[dict, dict]:
    stored, rendered = db.execute(
        "SELECT e.document, encounters_api.encounter_json(e) FROM encounters.encounter AS e WHERE e.uuid = %s",
        [encounter_uuid],
    ).fetchone()
    return json.loads(stored), json.loads(rendered)


def test_the_stored_document_follows_each_write_function(db):
    encounter = create(db, location_history=[{"location_uuid": str(uuid.uuid4())}])
    stored, rendered = stored_and_rendered(db, encounter["uuid"])
    assert stored == rendered == encounter
    assert len(stored["location_history"]) == 1

    body = {"location_uuid": str(uuid.uuid4()), "score_system": "meows", "spo2_scale": 2}
    db.execute(
        "SELECT encounters_api.update_encounter(%s, %s::jsonb, 'nurse', true)", [encounter["uuid"], json.dumps(body)]
    )
    stored, rendered = stored_and_rendered(db, encounter["uuid"])
    assert stored == rendered
    assert (stored["location_uuid"], stored["score_system"], len(stored["location_history"])) == (
        body["location_uuid"],
        "meows",
        2,
    )
    [entry] = stored["score_system_history"]

    changed = {"changed_time": "2019-05-05T05:05:05.000Z"}
    db.execute(
        "SELECT encounters_api.update_score_system_history(%s, %s::jsonb, 'nurse')",
        [entry["uuid"], json.dumps(changed)],
    )
    stored, rendered = stored_and_rendered(db, encounter["uuid"])
    assert stored == rendered
    assert stored["score_system_history"][0]["changed_time"] == changed["changed_time"]


def test_raw_writes_to_the_tables_re_render_it_too(db):
    encounter = create(db, location_history=[{"location_uuid": str(uuid.uuid4())}] * 3)
    db.execute(
        "UPDATE encounters.location_history SET departed_at = '2030-01-01Z' WHERE encounter_uuid = %s",
        [encounter["uuid"]],
    )
    stored, rendered = stored_and_rendered(db, encounter["uuid"])
    assert stored == rendered
    assert {visit["departed_at"] for visit in stored["location_history"]} == {"2030-01-01T00:00:00.000Z"}

    db.execute("DELETE FROM encounters.location_history WHERE encounter_uuid = %s", [encounter["uuid"]])
    assert stored_and_rendered(db, encounter["uuid"])[0]["location_history"] == []

    db.execute("UPDATE encounters.encounter SET document = '{\"forged\": true}' WHERE uuid = %s", [encounter["uuid"]])
    stored, rendered = stored_and_rendered(db, encounter["uuid"])
    assert stored == rendered  # a direct write of the column is rendered over


def test_moving_history_rows_re_renders_both_encounters(db):
    giver = create(db, location_history=[{"location_uuid": str(uuid.uuid4())}])
    taker = create(db)
    db.execute(
        "UPDATE encounters.location_history SET encounter_uuid = %s WHERE encounter_uuid = %s",
        [taker["uuid"], giver["uuid"]],
    )
    assert [len(stored_and_rendered(db, e["uuid"])[0]["location_history"]) for e in (giver, taker)] == [0, 1]
    assert all(stored == rendered for stored, rendered in (stored_and_rendered(db, e["uuid"]) for e in (giver, taker)))
