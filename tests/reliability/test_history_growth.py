"""A long location history: a PATCH does not read, nor render, the whole of it.

A move used to read every history row of the encounter three times over (the latest departure,
and twice the re-rendering of the stored document) and render the answer from them once more:
at 1,000 moves, 50 ms per PATCH. Now the latest departure is one index probe, the move's entry is
appended to the stored document as text, a change of the encounter's own fields copies the
stored histories in as text, and the answer is the stored document. The test counts the history
rows a PATCH reads (pg_stat_xact_user_tables, this transaction's own counts), not time:
bench/history_growth.py measures the time.

The stored document is then text surgery on jsonb's output, so the second test writes histories
every way there is, with values made to look like the JSON around them, and checks that the
stored text stays byte for byte what encounters_api.encounter_json renders.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from encounters_service.db import connect_sync, run_sync
from encounters_service.sqlfiles import load_queries
from tests.api.test_encounter_writes import DROP, create_body

QUERIES = load_queries()
# Text that looks like the JSON the stored document is cut at, for fields that callers write.
TRICKY = 'x"], "patient_record_uuid": "[", "location_history": [], "score_system_history": [] }]\\'


def create(conn: psycopg.Connection, **fields: object) -> dict:
    body = create_body(**{"admitted_at": "2026-01-01T00:00:00Z", "encounter_type": DROP, **fields})
    [(created, _version)] = run_sync(
        conn, QUERIES["writes.create_encounter"], body=json.dumps(body), caller="tests", can_edit_ews=True
    )
    return json.loads(created)


def patch(conn: psycopg.Connection, encounter: dict, body: dict, caller: str = "tests") -> dict:
    [(refusal, updated, _version)] = run_sync(
        conn,
        QUERIES["writes.update_encounter"],
        encounter_id=encounter["uuid"],
        body=json.dumps(body),
        caller=caller,
        can_edit_ews=True,
        if_match=[],
    )
    assert refusal is None
    return json.loads(updated)


def with_stays(conn: psycopg.Connection, stays: int) -> dict:
    encounter = create(conn)
    conn.execute(
        "INSERT INTO encounters.location_history (encounter_uuid, location_uuid, arrived_at, departed_at, created_by)"
        " SELECT %s, gen_random_uuid(), '2026-01-01'::timestamptz + (i - 1) * interval '1 hour',"
        " '2026-01-01'::timestamptz + i * interval '1 hour', 'tests' FROM generate_series(1, %s) AS i",
        [encounter["uuid"], stays],
    )
    return encounter


def history_rows_read(conninfo: str, stays: int, body: dict) -> int:
    """Rows of location_history that one PATCH of an encounter with `stays` stays reads."""
    with connect_sync(conninfo, autocommit=True) as setup:
        encounter = with_stays(setup, stays)
    with connect_sync(conninfo) as conn:  # one transaction: the counts below are its own
        patch(conn, encounter, body)
        [(read,)] = conn.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
            " WHERE relid = 'encounters.location_history'::regclass"
        ).fetchall()
        conn.commit()
    return read


@pytest.mark.parametrize(
    "body", [{"location_uuid": str(uuid.uuid4())}, {"encounter_type": "X"}, {"discharged_at": "2026-03-01T00:00:00Z"}]
)
def test_a_patch_reads_the_same_few_history_rows_however_long_the_history(fresh_database, body):
    # Other encounters' histories, analyzed (as migrate upgrade leaves a database): a table of a few
    # rows is rightly read whole by the planner, whatever the query.
    with connect_sync(fresh_database, autocommit=True) as setup:
        with_stays(setup, 5_000)
        setup.execute("ANALYZE encounters.location_history")
    short, long = history_rows_read(fresh_database, 10, body), history_rows_read(fresh_database, 1_000, body)
    assert short == long <= 5, (short, long)


def stored_and_rendered(conn: psycopg.Connection, encounter: dict) -> tuple[str, str]:
    return conn.execute(
        "SELECT e.document::text, encounters_api.encounter_json(e)::text"
        " FROM encounters.encounter AS e WHERE e.uuid = %s",
        [encounter["uuid"]],
    ).fetchone()


def test_the_stored_document_stays_the_rendering_byte_for_byte(db):
    def check(name: str, answer: dict) -> dict:
        """After each write: the stored text is the rendering, and the write answered it."""
        stored, rendered = stored_and_rendered(db, answer)
        assert stored == rendered, name
        assert json.loads(stored) == answer, name
        return answer

    parent = create(db, epr_encounter_id="P-1")
    child = check(
        "a child", create(db, child_of_encounter_uuid=parent["uuid"], epr_encounter_id=TRICKY, encounter_type=TRICKY)
    )
    check("move", patch(db, child, {"location_uuid": str(uuid.uuid4())}, caller=TRICKY))
    check("move again", patch(db, child, {"location_uuid": str(uuid.uuid4())}))
    check("score change", patch(db, child, {"score_system": TRICKY, "spo2_scale": 2}, caller=TRICKY))
    check("own fields", patch(db, child, {"encounter_type": "]", "discharged_at": "2026-02-01T00:00:00Z"}))
    [(unlinked, _version)] = run_sync(
        db,
        QUERIES["writes.unlink_encounter"],
        encounter_id=child["uuid"],
        body=json.dumps({"child_of_encounter_uuid": parent["uuid"]}),
        caller="tests",
        if_match=[],
    )
    check("unlinked", json.loads(unlinked))
    moved = check("move after unlinking", patch(db, child, {"location_uuid": str(uuid.uuid4())}))
    assert len(moved["location_history"]) == 3 and len(moved["score_system_history"]) == 1

    # A create's history may come in any order, and without times (those sort last): a move
    # after it renders the document in full.
    listed = create(
        db,
        location_history=[
            {"location_uuid": str(uuid.uuid4()), "arrived_at": "2026-01-03T00:00:00Z"},
            {"location_uuid": str(uuid.uuid4())},
            {"location_uuid": str(uuid.uuid4()), "arrived_at": "2025-12-01T00:00:00Z"},
        ],
    )
    check("create with a history list", listed)
    check("move after a stay without times", patch(db, listed, {"location_uuid": str(uuid.uuid4())}))
    db.execute("UPDATE encounters.location_history SET arrived_at = NULL WHERE encounter_uuid = %s", [listed["uuid"]])
    moved = check("raw history update, then a move", patch(db, listed, {"location_uuid": str(uuid.uuid4())}))
    assert len(moved["location_history"]) == 5

    empty = create(db)
    check("first move of an empty history", patch(db, empty, {"location_uuid": str(uuid.uuid4())}))
