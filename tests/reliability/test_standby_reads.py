"""Reads on a hot standby (DATABASE_READ_URL): the census routes run there, never staler than
READ_MAX_LAG_MS, and fall back to the primary, with no failed request, when the standby is
behind, stopped, or has not yet replayed the caller's own write (X-Encounters-LSN).

One primary and one streaming standby (tests/replication.py) for the module; each test runs the
app in-process on them, with its own pools, and new locations and patients of its own.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import psycopg
import pytest
from litestar.testing import TestClient

from encounters_service.api import ROUTES
from encounters_service.api.common import REQUIRES
from encounters_service.api.read_routing import ROUTE_READS, WRITTEN_POSITION, standby_routes
from encounters_service.app import create_app
from encounters_service.auth import READ_SCOPE
from encounters_service.db import sql_in_pieces
from encounters_service.sqlfiles import load_queries
from tests.api.test_encounter_writes import create_body, new_uuid
from tests.helpers import TEST_SETTINGS, as_app, auth
from tests.replication import Replicated, replicated, wait_until_replayed

CENSUS = "/dhos/v1/encounter/locations"
TYPED_PARAMETER = re.compile(r":\w+}")
HEADERS = auth()
# As the service runs it: in pieces (db.py, PIECE_BYTES).
OPEN_AT_LOCATIONS_SQL = sql_in_pieces(load_queries()["encounters.open_at_locations"].sql)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Replicated]:
    with replicated(1) as pair:
        yield pair


@contextmanager
def service(cluster: Replicated, **changes: object) -> Iterator[TestClient]:
    standby = cluster.standbys[0]
    settings = replace(
        TEST_SETTINGS, database_url=cluster.primary_conninfo, database_read_url=standby.conninfo(), **changes
    )
    with TestClient(create_app(settings, as_app(cluster.primary_conninfo))) as client:
        yield client


def reads(client: TestClient) -> dict[tuple[str, str], float]:
    """encounters_db_reads_total by (served_by, reason), from GET /metrics."""
    found = re.findall(
        r'encounters_db_reads_total\{reason="(\w+)",served_by="(\w+)"\} (\S+)', client.get("/metrics").text
    )
    return {(served_by, reason): float(count) for reason, served_by, count in found}


def census(client: TestClient, location: str, headers: dict | None = None) -> list[str]:
    response = client.post(CENSUS, json=[location], headers={**HEADERS, **(headers or {})})
    assert response.status_code == 200, response.text
    return [encounter["uuid"] for encounter in response.json()]


def admit(client: TestClient, location: str) -> tuple[str, str]:
    """Create an open encounter at `location`: its uuid and the answer's X-Encounters-LSN."""
    response = client.post("/dhos/v2/encounter", json=create_body(location_uuid=location), headers=HEADERS)
    assert response.status_code == 200, response.text
    return response.json()["uuid"], response.headers[WRITTEN_POSITION]


def wait_for(condition, seconds: float = 10) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - started


@contextmanager
def replay_paused(cluster: Replicated) -> Iterator[None]:
    standby = cluster.standbys[0]
    standby.sql("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        standby.sql("SELECT pg_wal_replay_resume()")
        wait_until_replayed(cluster.primary, standby)


def last_queries(conninfo: str) -> list[str]:
    """The statement each of the service's connections to this server ran last."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity"
            " WHERE application_name = 'encounters-service' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [query for (query,) in rows]


def test_the_census_runs_on_the_standby(cluster):
    """Proved from the servers' own pg_stat_activity: the census statement was run by one of the
    service's connections to the standby, and by none of its connections to the primary."""
    location = new_uuid()
    with service(cluster) as client:
        encounter, position = admit(client, location)
        wait_until_replayed(cluster.primary, cluster.standbys[0])
        before = reads(client)
        assert census(client, location) == [encounter]
        assert census(client, location, {WRITTEN_POSITION: position}) == [encounter]
        after = reads(client)
        assert OPEN_AT_LOCATIONS_SQL in last_queries(cluster.standbys[0].conninfo())
        assert OPEN_AT_LOCATIONS_SQL not in last_queries(cluster.primary_conninfo)
    assert after.get(("standby", "fresh"), 0) - before.get(("standby", "fresh"), 0) == 2


def test_a_standby_within_the_lag_bound_answers_as_of_its_replay(cluster):
    """Bounded, not zero, staleness: a write the standby has not replayed yet is not in its answer
    (unless the caller sends the write's position back, see below)."""
    location = new_uuid()
    with service(cluster, read_max_lag_ms=60_000) as client:
        first, _ = admit(client, location)
        wait_until_replayed(cluster.primary, cluster.standbys[0])
        with replay_paused(cluster):
            second, position = admit(client, location)
            assert census(client, location) == [first]
            # Read your own writes: with the write's position the read waits for nothing, it goes to the primary.
            assert sorted(census(client, location, {WRITTEN_POSITION: position})) == sorted([first, second])
            assert reads(client).get(("primary", "before_write")) == 1


def test_a_read_with_a_replayed_position_runs_on_the_standby(cluster):
    """The last watch may predate the write: the standby is asked again, and serves the read once it has replayed it."""
    location = new_uuid()
    with service(cluster) as client:
        with replay_paused(cluster):
            encounter, position = admit(client, location)
        before = reads(client)
        assert census(client, location, {WRITTEN_POSITION: position}) == [encounter]
        after = reads(client)
    assert after.get(("standby", "fresh"), 0) - before.get(("standby", "fresh"), 0) == 1


def test_a_standby_behind_the_bound_is_left_out_until_it_catches_up(cluster):
    location = new_uuid()
    with service(cluster, read_max_lag_ms=300) as client:
        first, _ = admit(client, location)
        with replay_paused(cluster):
            second, _ = admit(client, location)
            # Behind by more than 300 ms: every read goes to the primary, and shows the new encounter.
            wait_for(lambda: len(census(client, location)) == 2)
            before = reads(client)
            assert sorted(census(client, location)) == sorted([first, second])
            assert reads(client)[("primary", "no_fresh_standby")] > before.get(("primary", "no_fresh_standby"), 0)
            assert 'encounters_db_standby_usable{standby="' in client.get("/metrics").text
        # Caught up again: back on the standby within a watch or two.
        back_after = wait_for(lambda: _served_by_standby(client, location), seconds=5)
    assert back_after < 3


def _served_by_standby(client: TestClient, location: str) -> bool:
    before = reads(client).get(("standby", "fresh"), 0)
    census(client, location)
    return reads(client).get(("standby", "fresh"), 0) > before


def test_a_stopped_standby_fails_no_request(cluster):
    """Reads keep coming while the standby is stopped (at once, as a crash would) and started again:
    every answer is 200; they go to the primary meanwhile and back to the standby after."""
    location = new_uuid()
    standby = cluster.standbys[0]
    statuses: list[int] = []
    stop = threading.Event()
    with service(cluster) as client:
        encounter, _ = admit(client, location)
        wait_until_replayed(cluster.primary, standby)

        def keep_reading() -> None:
            while not stop.is_set():
                statuses.append(client.post(CENSUS, json=[location], headers=HEADERS).status_code)

        reader = threading.Thread(target=keep_reading)
        reader.start()
        try:
            time.sleep(0.3)
            standby.stop("immediate")
            time.sleep(1.0)
            fallback = reads(client).get(("primary", "standby_failed"), 0) + reads(client).get(
                ("primary", "no_fresh_standby"), 0
            )
            standby.start()
            wait_for(lambda: _served_by_standby(client, location), seconds=15)
        finally:
            stop.set()
            reader.join()
        assert census(client, location) == [encounter]
    assert fallback > 0
    assert len(statuses) > 20 and set(statuses) == {200}, sorted(set(statuses))


def test_every_standby_route_works_on_a_standby(cluster):
    """With READ_ROUTES=all, each read route of the table answers from the standby (no fallback)."""
    location = new_uuid()
    with service(cluster, read_routes="all") as client:
        created = client.post("/dhos/v2/encounter", json=create_body(location_uuid=location), headers=HEADERS).json()
        wait_until_replayed(cluster.primary, cluster.standbys[0])
        encounter, patient = created["uuid"], created["patient_uuid"]
        calls = [
            ("POST", CENSUS, [location]),
            ("POST", "/dhos/v1/encounter/patients", [patient]),
            ("POST", "/dhos/v1/encounter/locations/patient_count", [location]),
            ("GET", f"/dhos/v2/encounter/latest?patient_id={patient}", None),
            ("POST", "/dhos/v2/encounter/latest", [patient]),
            ("GET", "/dhos/v2/encounters?modified_since=2000-01-01", None),
            ("GET", f"/dhos/v1/encounter/{encounter}", None),
            ("GET", f"/dhos/v2/encounter?patient_id={patient}", None),
            ("GET", f"/dhos/v1/encounter/{encounter}/children", None),
            ("GET", f"/dhos/v1/encounter/{encounter}/merge_history", None),
            ("GET", f"/dhos/v1/encounter/{encounter}/history", None),
            ("GET", f"/dhos/v1/encounter/{encounter}/history/1", None),
        ]
        before = reads(client)
        for method, path, body in calls:
            response = client.request(method, path, json=body, headers=HEADERS)
            assert response.status_code == 200, (path, response.text)
        after = reads(client)
    assert len(calls) == len(standby_routes("all"))
    assert after.get(("standby", "fresh"), 0) - before.get(("standby", "fresh"), 0) == len(calls)
    assert {key for key in after if key[0] == "primary"} <= {key for key in before if key[0] == "primary"}


def test_read_routes_census_keeps_read_then_write_routes_on_the_primary(cluster):
    with service(cluster) as client:
        created = client.post("/dhos/v2/encounter", json=create_body(), headers=HEADERS).json()
        before = reads(client)
        assert client.get(f"/dhos/v1/encounter/{created['uuid']}", headers=HEADERS).json() == created
        assert reads(client) == before  # not a standby route: not counted, run on the primary


def test_a_malformed_written_position_is_a_400(cluster):
    with service(cluster) as client:
        response = client.post(CENSUS, json=[new_uuid()], headers={**HEADERS, WRITTEN_POSITION: "yesterday"})
    assert response.status_code == 400
    assert WRITTEN_POSITION in response.json()["message"]


def test_without_standbys_writes_carry_no_position_header(client):
    response = client.post("/dhos/v2/encounter", json=create_body(), headers=HEADERS)
    assert response.status_code == 200
    assert WRITTEN_POSITION not in response.headers


def test_the_table_names_every_read_route_and_only_those():
    read_routes = {
        f"{method} {TYPED_PARAMETER.sub('}', path)}"  # as a request's path_template spells it
        for handler in ROUTES
        if handler.opt.get(REQUIRES, (None,))[0] == READ_SCOPE
        for path in handler.paths
        for method in handler.http_methods
    }
    assert set(ROUTE_READS) == read_routes
    assert standby_routes("none") == frozenset()
    assert standby_routes("all") == {route for route, kind in ROUTE_READS.items() if kind != "primary"}
    assert standby_routes("census") == {route for route, kind in ROUTE_READS.items() if kind == "census"}
