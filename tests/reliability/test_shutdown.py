"""SIGTERM under load: `encounters-service serve` (as production runs it) stops taking new requests,
finishes the ones it has (some of them held in PostgreSQL by a row lock until after the signal),
closes its database pool cleanly and exits 0."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

from encounters_service.db import APPLICATION_NAME
from tests.api.test_encounter_writes import ENCOUNTERS, create_body, encounter_url, new_uuid
from tests.helpers import SERVICE_ENV, Service, as_app, auth

IN_FLIGHT = 8  # blocked in PostgreSQL when SIGTERM comes
LOADERS = 8  # sending one request after another, on keep-alive connections


def service_sessions(db: psycopg.Connection, **where: str) -> list[tuple]:
    conditions = "".join(f" AND {column} = %({column})s" for column in where)
    return db.execute(
        "SELECT pid, state, wait_event_type FROM pg_stat_activity"
        f" WHERE application_name = %(app)s AND datname = current_database(){conditions}",
        {"app": APPLICATION_NAME, **where},
    ).fetchall()


def wait_for(condition, seconds: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_0(fresh_database, db, pg_server):
    # A session that ends without PostgreSQL's Terminate message logs "unexpected EOF" at DEBUG1.
    db.execute(f'ALTER DATABASE "{db.info.dbname}" SET log_min_messages = debug1')
    server_log = Path(pg_server.logfile)
    log_start = server_log.stat().st_size
    service = Service.start({**SERVICE_ENV, "DATABASE_URL": as_app(fresh_database), "LOG_LEVEL": "DEBUG"})
    service.wait_until_running()
    with httpx.Client(base_url=service.base_url, headers=auth()) as http:
        encounter = http.post(ENCOUNTERS, json=create_body()).json()

    with psycopg.connect(fresh_database) as blocker:  # holds the encounter's row lock until rollback
        blocker.execute("SELECT FROM encounters.encounter WHERE uuid = %s FOR UPDATE", [encounter["uuid"]])

        def move() -> httpx.Response:
            return httpx.patch(
                f"{service.base_url}{encounter_url(encounter['uuid'])}",
                json={"location_uuid": new_uuid()},
                headers=auth(),
                timeout=30,
            )

        with ThreadPoolExecutor(IN_FLIGHT + LOADERS) as pool:
            moves = [pool.submit(move) for _ in range(IN_FLIGHT)]
            wait_for(lambda: len(service_sessions(db, wait_event_type="Lock")) == IN_FLIGHT, 10, "requests in flight")
            created: list[tuple[str, int | None, float]] = []
            loads = [pool.submit(keep_creating, service.base_url, created) for _ in range(LOADERS)]
            wait_for(lambda: len(created) >= 4 * LOADERS, 10, "load running")

            service.terminate()
            terminated_at = time.monotonic()
            refused_after = wait_for(lambda: refuses_connections(service.base_url), 5, "new connections refused")
            assert not any(move.done() for move in moves)
            blocker.rollback()
            answers = [move.result() for move in moves]
            for load in loads:
                load.result()

    assert [answer.status_code for answer in answers] == [200] * IN_FLIGHT, [a.text for a in answers]
    refused_at = terminated_at + refused_after
    assert {status for _, status, _ in created} <= {200, None}  # None: never read, so never done
    assert not [key for key, status, started in created if status == 200 and started > refused_at]
    stored = {key for (key,) in db.execute("SELECT epr_encounter_id FROM encounters.encounter")}
    assert {key for key, status, _ in created if status == 200} <= stored
    output = service.stop()
    assert service_sessions(db) == []  # every connection of the pool closed, cleanly:
    assert "unexpected EOF" not in server_log.read_text()[log_start:]
    assert "Traceback" not in output and " ERROR " not in output, output
    print(
        f"\nshutdown: {IN_FLIGHT} requests in flight finished 200, {len(created)} creates from {LOADERS} clients"
        f" around it, new connections refused {refused_after:.2f} s after SIGTERM"
    )


def keep_creating(base_url: str, outcomes: list[tuple[str, int | None, float]]) -> None:
    """Creates until the service refuses the connection; outcomes: (epr id, status or None, when sent)."""
    with httpx.Client(base_url=base_url, headers=auth(), timeout=30) as http:
        while True:
            key, started = new_uuid(), time.monotonic()
            try:
                status = http.post(ENCOUNTERS, json=create_body(epr_encounter_id=key)).status_code
            except httpx.ConnectError:
                return
            except httpx.RemoteProtocolError:  # an idle keep-alive connection closed before the request was read
                status = None
            outcomes.append((key, status, started))


def refuses_connections(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/running", timeout=1)
    except httpx.ConnectError:
        return True
    return False
