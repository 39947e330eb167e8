"""The write functions called directly, as an analyst or another service would: the JSON forms
they render, the audited refusal that commits, and a race that only a lock can settle."""

from __future__ import annotations

import json
import threading
import uuid

import psycopg
import pytest

from encounters_service.db import connect_sync
from tests.helpers import COMPACT_KEYS, EXPANDED_KEYS, FULL_KEYS, ISO_MS


def create(db: psycopg.Connection, **changes: object) -> dict:
    body = {
        "patient_uuid": str(uuid.uuid4()),
        "location_uuid": str(uuid.uuid4()),
        "patient_record_uuid": str(uuid.uuid4()),
        "dh_product_uuid": str(uuid.uuid4()),
        "admitted_at": "2018-01-01T08:00:00+01:00",
        "score_system": "news2",
        **changes,
    }
    (created,) = db.execute(
        "SELECT encounters_api.create_encounter(%s::jsonb, 'analyst', false)", [json.dumps(body)]
    ).fetchone()
    return json.loads(created)


def render(db: psycopg.Connection, encounter_uuid: str, compact: bool, expanded: bool) -> dict:
    (document,) = db.execute(
        "SELECT encounters_api.encounter_json(e, %s, %s) FROM encounters.encounter AS e WHERE uuid = %s",
        [compact, expanded, encounter_uuid],
    ).fetchone()
    return json.loads(document)


@pytest.mark.parametrize(
    ("compact", "expanded", "keys"),
    [
        (False, False, FULL_KEYS),
        (True, False, COMPACT_KEYS),
        (False, True, FULL_KEYS | EXPANDED_KEYS),
        (True, True, COMPACT_KEYS | EXPANDED_KEYS),
    ],
    ids=["full", "compact", "expanded", "compact-expanded"],
)
def test_each_form_has_exactly_its_fields_in_api_format(db, compact, expanded, keys):
    created = create(db, epr_encounter_id="EPR-1", discharged_at="2018-01-02T00:00:00.25Z")
    document = render(db, created["uuid"], compact, expanded)
    assert set(document) == keys
    assert {key: document[key] for key in COMPACT_KEYS} == {key: created[key] for key in COMPACT_KEYS}
    assert document["admitted_at"] == "2018-01-01T07:00:00.000Z"
    assert document["discharged_at"] == "2018-01-02T00:00:00.250Z"
    assert document["deleted_at"] is None
    for key in keys & {"created", "modified"}:
        assert ISO_MS.match(document[key])
    if expanded:
        assert document["created_by"] == document["modified_by"] == "analyst"
    if not compact:
        assert document["spo2_scale"] == 1
        assert document["dh_product"] == created["dh_product"]


def test_a_refused_score_change_returns_the_refusal_and_commits_only_its_audit_event(db):
    encounter = create(db)
    db.execute("DELETE FROM encounters.outbox")
    before = db.execute("SELECT e::text FROM encounters.encounter AS e").fetchall()
    refusal, result = db.execute(
        "SELECT refusal, result FROM encounters_api.update_encounter(%s, %s::jsonb, 'nurse', false)",
        [encounter["uuid"], json.dumps({"score_system": "meows", "location_uuid": str(uuid.uuid4())})],
    ).fetchone()
    assert "can_edit_ews" in refusal
    assert result is None
    assert db.execute("SELECT e::text FROM encounters.encounter AS e").fetchall() == before
    assert db.execute("SELECT count(*) FROM encounters.location_history").fetchone() == (0,)
    events = db.execute("SELECT routing_key, body ->> 'event_type' FROM encounters.outbox").fetchall()
    assert events == [("dhos.34837004", "ews_change_failure")]


def test_duplicate_message_is_null_without_a_clash(db):
    encounter = create(db, epr_encounter_id="EPR-2")
    checks = db.execute(
        "SELECT encounters_api.duplicate_message(rule, e) FROM encounters.encounter AS e, "
        "unnest(ARRAY['encounter_live_epr_id_key', 'encounter_one_open_local_key']) AS rule WHERE e.uuid = %s",
        [encounter["uuid"]],
    ).fetchall()
    assert checks == [(None,), (None,)]


def test_two_concurrent_reparentings_cannot_form_a_cycle(fresh_database, db):
    first = create(db, epr_encounter_id="A")["uuid"]
    second = create(db, epr_encounter_id="B")["uuid"]
    attach = "SELECT refusal FROM encounters_api.update_encounter(%s, %s::jsonb, 'analyst', false)"
    outcome: dict[str, Exception | None] = {}

    with connect_sync(fresh_database) as holder:  # one open transaction that attached first → second
        holder.execute(attach, [first, json.dumps({"child_of_encounter_uuid": second})])

        def attach_second_to_first() -> None:
            with connect_sync(fresh_database, autocommit=True) as racer:
                try:
                    racer.execute(attach, [second, json.dumps({"child_of_encounter_uuid": first})])
                    outcome["error"] = None
                except psycopg.Error as error:
                    outcome["error"] = error

        racer = threading.Thread(target=attach_second_to_first)
        racer.start()
        racer.join(timeout=0.5)
        assert racer.is_alive(), "the second re-parenting must wait for the first"
        holder.commit()
        racer.join(timeout=10)

    error = outcome["error"]
    assert isinstance(error, psycopg.Error) and error.sqlstate == "EN400"
    assert "own ancestor" in error.diag.message_primary
    parents = db.execute(
        "SELECT uuid::text, child_of_encounter_uuid::text FROM encounters.encounter ORDER BY epr_encounter_id"
    ).fetchall()
    assert parents == [(first, second), (second, None)]


def test_a_move_before_a_future_admission_records_a_zero_length_stay(db):
    """An admission time in the future (clock skew, a booked stay) cannot make arrival later than departure."""
    encounter = create(db, admitted_at="2999-01-01T00:00:00Z")
    db.execute(
        "SELECT encounters_api.update_encounter(%s, %s::jsonb, 'analyst', false)",
        [encounter["uuid"], json.dumps({"location_uuid": str(uuid.uuid4())})],
    )
    arrived, departed = db.execute("SELECT arrived_at, departed_at FROM encounters.location_history").fetchone()
    assert arrived == departed
    assert arrived.year < 2999
