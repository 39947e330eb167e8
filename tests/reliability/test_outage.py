"""PostgreSQL crashes under `encounters-service serve` (as production runs it): the service answers
503 {"message"} quickly — no hang, no 500 — and, once PostgreSQL is back, recovers by itself.
Every write answered 2xx survived the crash; every write answered with an error is either wholly
there (its commit raced the crash) or not there at all, never half-done.

The PostgreSQL here is the test's own, with the default durability settings (synchronous commit),
never the session server. OUTAGE_SECONDS (env, default 20) sets how long PostgreSQL stays down.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from encounters_service.db import connect_sync
from tests.api.test_encounter_writes import ENCOUNTERS, create_body, encounter_url, new_uuid
from tests.conftest import crash_postgres, create_database, restart_postgres, running_postgres
from tests.helpers import SERVICE_ENV, Service, auth

WRITERS = 4
WRITER_KINDS = ["create"] * (WRITERS - 1) + ["move"]
OUTAGE_SECONDS = float(os.environ.get("OUTAGE_SECONDS", "20"))  # long enough for backoff to matter
ANSWER_WITHIN_SECONDS = 3.0  # the pool waits 2 s for a connection, then the answer is 503
RECOVER_WITHIN_SECONDS = 3.0  # after PostgreSQL accepts connections again
UNAVAILABLE = b'{"message":"the database is unavailable, try again shortly"}'
PASSWORD = "outage-test-password"  # in DATABASE_URL, to show it never reaches the log
HEADERS = auth()


@dataclass
class Answer:
    kind: str  # create | move
    key: str  # the create's epr_encounter_id, the move's new location
    status: int | None  # None: no HTTP answer at all
    started: float
    finished: float
    body: bytes


@pytest.fixture
def outage():
    """Its own PostgreSQL, and the service on it (migrated at start, as a deployment may be)."""
    with running_postgres() as server:
        conninfo = create_database(server, "encounters")
        url = conninfo.replace("postgres@", f"postgres:{PASSWORD}@")
        env = {**SERVICE_ENV, "DATABASE_URL": url, "MIGRATE_ON_START": "true", "LOG_LEVEL": "DEBUG"}
        service = Service.start(env)
        service.wait_until_running()
        yield server, conninfo, service
        output = service.stop()
        for secret in (PASSWORD, SERVICE_ENV["HS_KEY"], HEADERS["Authorization"].split()[1]):
            assert secret not in output


def test_writes_through_a_crash_of_postgresql(outage):
    server, conninfo, service = outage
    moved = httpx.post(f"{service.base_url}{ENCOUNTERS}", json=create_body(), headers=HEADERS).json()
    answers: list[Answer] = []
    stop = threading.Event()
    with ThreadPoolExecutor(WRITERS) as pool:
        start_writers(pool, service.base_url, moved, answers, stop)
        time.sleep(1)
        crash_postgres(server)
        down_at = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        restarting_at = time.monotonic()
        restart_postgres(server)
        back_at = time.monotonic()
        recovered_at = wait_until(lambda: any(a.status == 200 and a.started > back_at for a in answers))
        time.sleep(2)
        stop.set()

    statuses = Counter(answer.status for answer in answers)
    during = [answer for answer in answers if down_at < answer.started and answer.finished < restarting_at]
    slowest = max(answer.finished - answer.started for answer in answers)
    print(
        f"\noutage of {OUTAGE_SECONDS:.0f} s: {len(answers)} writes {dict(statuses)}, {len(during)} during it, "
        f"each answered within {slowest:.2f} s; the service recovered {recovered_at - back_at:.2f} s after "
        f"PostgreSQL accepted connections again"
    )
    assert set(statuses) <= {200, 503}, [answer.body for answer in answers if answer.status not in (200, 503)][:3]
    assert {answer.body for answer in answers if answer.status == 503} <= {UNAVAILABLE}
    assert during and {answer.status for answer in during} == {503}
    assert slowest < ANSWER_WITHIN_SECONDS
    assert recovered_at - back_at < RECOVER_WITHIN_SECONDS
    settled = [answer for answer in answers if answer.started > recovered_at]
    assert settled and {answer.status for answer in settled} == {200}
    with connect_sync(conninfo, autocommit=True) as db:
        assert_every_write_whole_or_absent(db, answers, moved)


def test_after_a_restart_while_idle_no_request_fails(outage):
    """The pool's idle connections died with the old server: none of them is handed out."""
    server, _, service = outage
    with httpx.Client(base_url=service.base_url, headers=HEADERS, timeout=30) as http:
        for _ in range(40):  # every worker process opens its connections
            assert http.post(ENCOUNTERS, json=create_body()).status_code == 200
        crash_postgres(server)
        restart_postgres(server)
        statuses = Counter(http.post(ENCOUNTERS, json=create_body()).status_code for _ in range(40))
    assert statuses == {200: 40}


def start_writers(
    pool: ThreadPoolExecutor, base_url: str, moved: dict, answers: list[Answer], stop: threading.Event
) -> list[Future]:
    """WRITERS clients on `pool` (which needs as many threads), each keep_sending until `stop`: all
    but one creating, the last moving the encounter `moved`."""
    return [pool.submit(keep_sending, base_url, kind, moved, answers, stop) for kind in WRITER_KINDS]


def keep_sending(base_url: str, kind: str, moved: dict, answers: list[Answer], stop: threading.Event) -> None:
    """One client's writes until `stop`, one after the other: creates (each with a new EPR id) or
    moves of the encounter `moved` (each to a new location), every answer noted in `answers`."""
    with httpx.Client(base_url=base_url, headers=HEADERS, timeout=30) as http:
        while not stop.is_set():
            key, started = new_uuid(), time.monotonic()
            try:
                if kind == "create":
                    response = http.post(ENCOUNTERS, json=create_body(epr_encounter_id=key))
                else:
                    response = http.patch(encounter_url(moved["uuid"]), json={"location_uuid": key})
                status, body = response.status_code, response.content
            except httpx.TransportError as error:
                status, body = None, repr(error).encode()
            answers.append(Answer(kind, key, status, started, time.monotonic(), body))


def wait_until(condition: Callable[[], bool], seconds: float = 30) -> float:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(0.02)
    return time.monotonic()


def assert_every_write_whole_or_absent(db: psycopg.Connection, answers: list[Answer], moved: dict) -> None:
    created = dict(db.execute("SELECT epr_encounter_id, uuid::text FROM encounters.encounter").fetchall())
    events = Counter(
        encounter
        for (encounter,) in db.execute(
            "SELECT encounter_uuid::text FROM encounters.outbox WHERE routing_key = 'dhos.DM000007'"
        )
    )
    stays = [
        location
        for (location,) in db.execute(
            "SELECT location_uuid::text FROM encounters.location_history WHERE encounter_uuid = %s ORDER BY id",
            [moved["uuid"]],
        )
    ]
    [(current,)] = db.execute("SELECT location_uuid::text FROM encounters.encounter WHERE uuid = %s", [moved["uuid"]])
    visited = set([*stays, current][1:])  # the first is where the encounter was created
    for answer in answers:
        if answer.kind == "create":
            there = answer.key in created
            assert there or answer.status != 200, f"a create answered 200 is missing: {answer.key}"
            assert events[created.get(answer.key)] == there  # with its event exactly once, or neither
        else:
            assert answer.key in visited or answer.status != 200, f"a move answered 200 is missing: {answer.key}"
    assert len(stays) == len(visited)  # one stay recorded per move that committed
    assert events[moved["uuid"]] == 1 + len(visited)  # the create's event, then one per move
