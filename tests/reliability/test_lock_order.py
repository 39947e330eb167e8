"""Lock order: a record merge racing a PATCH of one of the encounters it moves never deadlocks.

The merge used to lock and move its encounters one by one in uuid order. A PATCH of the
encounter with the larger uuid locked that row first and then, writing it, waited in a unique
index (one open local encounter per patient, or one live encounter per EPR id) on the merge's
uncommitted change of the encounter with the smaller uuid; the merge then waited for the PATCH's
row: a deadlock, answered 503 "database unavailable". Now every writer first takes the advisory
lock of each patient it may change (encounters_api.lock_patients, in one sorted order), so the two
are serialised before either touches a row.

The race runs through the service's own Database (pool, query files, retries) on two real
connections, each merge and its PATCH released together, LOCK_RACE_ITERATIONS times (default 300,
a few seconds; the issue asked for 1,000). Deadlocks are counted by PostgreSQL
(pg_stat_database.deadlocks), which also sees those the service retried.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import psycopg
import psycopg.errors
import pytest

from encounters_service.db import APPLICATION_NAME, RETRIES, Database, connect_sync, make_pool
from encounters_service.sqlfiles import Query
from tests.api.test_errors import app_client, assert_error  # noqa: F401 (a fixture)
from tests.helpers import TEST_SETTINGS, auth

ITERATIONS = int(os.environ.get("LOCK_RACE_ITERATIONS", "300"))


def _uuid(prefix: str, i: int) -> str:
    """A uuid whose order is set by `prefix`: the merge reaches 0… before f…."""
    return f"{prefix * 8}-0000-4000-8000-{i:012x}"


def arrange(db: psycopg.Connection, count: int) -> list[dict]:
    """Per iteration a patient record with two encounters of one patient: `first` (the smaller uuid)
    open, `second` discharged and local. Odd iterations give `first` an EPR id; even ones leave it
    local (so it is the patient's open local encounter)."""
    cases = []
    for i in range(count):
        epr_id = f"RACE-{i}" if i % 2 else None
        cases.append(
            {
                "first": _uuid("0", i),
                "second": _uuid("f", i),
                "record": str(uuid.uuid4()),
                "patient": str(uuid.uuid4()),
                "epr_id": epr_id,
                # What the PATCH asks for clashes with `first` in a unique index: re-opening the
                # second local encounter, or taking the first's EPR id.
                "patch": {"epr_encounter_id": epr_id} if epr_id else {"discharged_at": None},
            }
        )
    with db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO encounters.encounter (uuid, epr_encounter_id, admitted_at, discharged_at, location_uuid,"
            " patient_uuid, patient_record_uuid, dh_product_uuid, score_system, created_by, modified_by)"
            " VALUES (%s, %s, '2020-01-01', %s, gen_random_uuid(), %s, %s, gen_random_uuid(), 'news2', 'arrange',"
            " 'arrange')",
            [
                row
                for case in cases
                for row in (
                    (case["first"], case["epr_id"], None, case["patient"], case["record"]),
                    (case["second"], None, "2020-01-02", case["patient"], case["record"]),
                )
            ],
        )
    return cases


def deadlocks(db: psycopg.Connection) -> int:
    return db.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


@asynccontextmanager
async def service_database(conninfo: str, connections: int) -> AsyncIterator[Database]:
    """The service's own Database (its pool, its retries) with `connections` connections; on exit
    each session's statistics are flushed (a backend sends them when idle, at most once a second,
    unless told) so that pg_stat_database counts every deadlock."""
    pool = make_pool(replace(TEST_SETTINGS, pool_min_size=connections, pool_max_size=connections), conninfo)
    await pool.open(wait=True)
    try:
        yield Database(pool)
    finally:
        async with AsyncExitStack() as stack:
            sessions = [await stack.enter_async_context(pool.connection()) for _ in range(connections)]
            for session in sessions:
                await session.execute("SELECT pg_stat_force_next_flush()")
                await session.execute("SELECT 1")  # the flush happens when the backend goes idle
        await pool.close()


async def outcome(write: Awaitable[object]) -> str:
    try:
        await write
        return "ok"
    except psycopg.Error as error:
        return error.sqlstate or type(error).__name__


async def race(database: Database, cases: list[dict]) -> dict[str, Counter]:
    """Each case's merge and PATCH, sent together on two connections; what each answered."""
    results: dict[str, Counter] = {"merge": Counter(), "patch": Counter()}
    start = asyncio.Barrier(2)

    def merge(case: dict) -> Awaitable[object]:
        body = {
            "child_record_uuid": case["record"],
            "parent_record_uuid": str(uuid.uuid4()),
            "parent_patient_uuid": str(uuid.uuid4()),
            "message_uuid": str(uuid.uuid4()),
        }
        return database.rows("writes.merge_encounters", body=json.dumps(body), caller="race")

    def patch(case: dict) -> Awaitable[object]:
        return database.rows(
            "writes.update_encounter",
            encounter_id=case["second"],
            body=json.dumps(case["patch"]),
            caller="race",
            can_edit_ews=False,
            if_match=[],
        )

    async def side(name: str, write: Callable[[dict], Awaitable[object]]) -> None:
        for case in cases:
            await start.wait()
            results[name][await outcome(write(case))] += 1

    async with asyncio.timeout(120):
        await asyncio.gather(side("merge", merge), side("patch", patch))
    return results


def test_a_merge_racing_a_patch_of_an_encounter_it_moves_never_deadlocks(fresh_database, db):
    cases = arrange(db, ITERATIONS)
    # Look for deadlocks after 10 ms instead of 1 s, so that one costs little time (for new sessions).
    db.execute(f"ALTER DATABASE {db.info.dbname} SET deadlock_timeout = '10ms'")
    before = deadlocks(db)

    async def run() -> dict[str, Counter]:
        async with service_database(fresh_database, 2) as database:
            return await race(database, cases)

    results = asyncio.run(run())
    seen = deadlocks(db) - before
    print(
        f"\n{ITERATIONS} merge/PATCH races: merge {dict(results['merge'])}, patch {dict(results['patch'])},"
        f" deadlocks {seen}"
    )

    assert seen == 0
    # Whoever went first, the PATCH clashes with the other encounter (409) and every merge moves both.
    assert results == {"merge": Counter(ok=ITERATIONS), "patch": Counter(EN409=ITERATIONS)}
    left = db.execute(
        "SELECT count(*) FROM encounters.encounter WHERE patient_record_uuid = ANY(%s::uuid[])",
        [[case["record"] for case in cases]],
    ).fetchone()
    assert left == (0,)


def test_a_deadlock_is_retried_and_the_write_applied_once(fresh_database, db):
    """A deadlock that still happens (here made on purpose by a session that takes the locks in
    the wrong order) costs the request a retry, not its answer."""
    (case,) = arrange(db, 1)
    before = deadlocks(db)
    # PostgreSQL looks for a deadlock once, deadlock_timeout after a session starts waiting: the
    # service's session (1 s, the default) starts waiting first and looks after the intruder has
    # closed the cycle, so it is the one that gives up; the intruder would look only after 60 s.
    intruder = connect_sync(fresh_database)
    intruder.execute("SET deadlock_timeout = '60s'")
    intruder.execute("SELECT FROM encounters.encounter WHERE uuid = %s FOR UPDATE", [case["first"]])
    move = {"location_uuid": str(uuid.uuid4())}

    async def run() -> list[tuple]:
        async with service_database(fresh_database, 1) as database:
            patch = asyncio.create_task(
                database.rows(
                    "writes.update_encounter",
                    encounter_id=case["first"],
                    body=json.dumps(move),
                    caller="retried",
                    can_edit_ews=False,
                    if_match=[],
                )
            )
            await waiting_for_a_lock(db)  # the PATCH holds the patient's lock and waits for the row
            await asyncio.to_thread(
                intruder.execute, "SELECT encounters_api.lock_patients(ARRAY[%s]::uuid[])", [case["patient"]]
            )
            intruder.commit()
            return await patch

    [(refusal, document, _version)] = asyncio.run(run())
    intruder.close()
    assert refusal is None and json.loads(document)["location_uuid"] == move["location_uuid"]
    assert deadlocks(db) - before >= 1
    assert db.execute("SELECT count(*) FROM encounters.location_history").fetchone() == (1,)
    assert db.execute("SELECT routing_key FROM encounters.outbox ORDER BY id").fetchall() == [
        ("dhos.DM000007",),
        ("dhos.34837004",),
    ]


async def waiting_for_a_lock(db: psycopg.Connection) -> None:
    async with asyncio.timeout(10):
        while not db.execute(
            "SELECT FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
            [APPLICATION_NAME],
        ).fetchall():
            await asyncio.sleep(0.01)


def probe(fail_times: int) -> Query:
    """A statement that fails with a deadlock its first `fail_times` runs (counted by a sequence,
    which a rollback does not undo), then answers how many runs it took."""
    sql = f"SELECT pg_temp.deadlock_probe({fail_times})"
    return Query("test.deadlock_probe", Path("test"), "fails, then answers", (), sql)


PROBE_FUNCTION = """
CREATE FUNCTION pg_temp.deadlock_probe(fail_times integer) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE run bigint := nextval('deadlock_probe_runs');
BEGIN
    IF run <= fail_times THEN
        RAISE EXCEPTION USING ERRCODE = 'deadlock_detected', MESSAGE = 'probe';
    END IF;
    RETURN run;
END $$
"""


@pytest.mark.parametrize(("fail_times", "answer"), [(0, 1), (RETRIES, RETRIES + 1), (RETRIES + 1, None)])
def test_a_deadlocked_statement_is_run_again_at_most_retries_times(fresh_database, db, fail_times, answer):
    db.execute("CREATE SEQUENCE deadlock_probe_runs")

    async def run() -> object:
        async with service_database(fresh_database, 1) as database:
            async with database.pool.connection() as conn:
                await conn.execute(PROBE_FUNCTION)  # pg_temp: this session's, which the pool keeps
            database.queries["test.deadlock_probe"] = probe(fail_times)
            return await database.value("test.deadlock_probe")

    if answer is None:
        with pytest.raises(psycopg.errors.DeadlockDetected):
            asyncio.run(run())
    else:
        assert asyncio.run(run()) == answer
    runs = db.execute("SELECT last_value FROM deadlock_probe_runs").fetchone()[0]
    assert runs == min(fail_times, RETRIES) + 1


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_conflict_that_outlasts_the_retries_is_503_saying_what_happened(app_client, sqlstate):  # noqa: F811
    response = app_client.get(f"/test/raise/{sqlstate}", headers=auth())
    assert_error(response, 503, "conflicted with concurrent changes")
    assert "unavailable" not in response.json()["message"]
    assert response.headers["Retry-After"] == "1"
