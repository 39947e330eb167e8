"""Each read request runs one SQL statement, however many encounters it returns.

How statements are counted: the test database is set to `log_statement = 'all'` before the app
opens its connections, so PostgreSQL itself writes one `statement:`/`execute …:` line to its log
for every statement a client sends (statements inside functions, such as the history subqueries
of encounters_api.encounter_json, are not client statements and are not logged). The test reads
the lines the server appended to its log during one HTTP request. This counts what reached the
server, whatever the Python side does, and needs no extension (pg_stat_statements would need
shared_preload_libraries and a restart).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from litestar.testing import TestClient
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from encounters_service.app import create_app
from tests.helpers import TEST_SETTINGS, as_app, auth
from tests.queries.arrange import (
    WARD_A,
    insert_encounter,
    insert_location_history,
    insert_score_system_history,
)

CLIENT_STATEMENT = re.compile(r"LOG:  (?:statement|execute [^:]*): ")


@pytest.fixture
def logged_client(pg_server, fresh_database: str) -> Iterator[TestClient]:
    """The app on a database whose sessions log every statement they run."""
    dbname = conninfo_to_dict(fresh_database)["dbname"]
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(sql.Identifier(dbname)))
    with TestClient(create_app(TEST_SETTINGS, as_app(fresh_database))) as client:
        yield client


def statements_during(logfile: Path, request: Callable[[], object]) -> int:
    start = logfile.stat().st_size
    request()
    with logfile.open("rb") as log:
        log.seek(start)
        return len(CLIENT_STATEMENT.findall(log.read().decode(errors="replace")))


def arrange_patients(db: psycopg.Connection, count: int) -> list[UUID]:
    """`count` patients at WARD_A, each with an open encounter, a child, and both histories."""
    patients = [uuid4() for _ in range(count)]
    for patient in patients:
        encounter = insert_encounter(db, patient_uuid=patient, modified="2021-01-02T00:00:00Z")
        insert_encounter(db, patient_uuid=patient, child_of_encounter_uuid=encounter, modified="2021-01-02T00:00:00Z")
        insert_location_history(db, encounter)
        insert_score_system_history(db, encounter)
    return patients


def read_requests(patients: list[UUID]) -> dict[str, tuple[str, str, dict]]:
    """(method, path, request arguments) of every read route, asking about these patients."""
    ids = [str(p) for p in patients]
    first = ids[0]
    return {
        "children": ("GET", f"/dhos/v1/encounter/{first}/children", {"params": {"show_deleted": "true"}}),
        "by patient": ("GET", "/dhos/v2/encounter", {"params": {"patient_id": first, "show_children": "true"}}),
        "by patient open as of": (
            "GET",
            "/dhos/v2/encounter",
            {"params": {"patient_id": first, "open_as_of": "2021-01-01T00:00:00Z"}},
        ),
        "modified since": ("GET", "/dhos/v2/encounters", {"params": {"modified_since": "2021-01-01"}}),
        "latest": ("GET", "/dhos/v2/encounter/latest", {"params": {"patient_id": first}}),
        "latest per patient": ("POST", "/dhos/v2/encounter/latest", {"json": ids}),
        "locations": ("POST", "/dhos/v1/encounter/locations", {"json": [str(WARD_A)]}),
        "patients": ("POST", "/dhos/v1/encounter/patients", {"json": ids}),
        "patient count": ("POST", "/dhos/v1/encounter/locations/patient_count", {"json": [str(WARD_A)]}),
    }


def test_one_statement_per_read_request_for_one_or_many_encounters(pg_server, logged_client, db):
    logfile = Path(pg_server.logfile)
    # The counter itself: two one-statement requests are two statements.
    assert statements_during(logfile, lambda: [logged_client.get("/healthcheck") for _ in range(2)]) == 2

    patients: list[UUID] = []
    for more in (1, 40):
        patients += arrange_patients(db, more)
        for name, (method, path, arguments) in read_requests(patients).items():
            responses = []

            def send() -> None:  # called by statements_during, within this iteration
                responses.append(logged_client.request(method, path, headers=auth(), **arguments))  # noqa: B023

            assert statements_during(logfile, send) == 1, name
            assert responses[0].status_code == 200, (name, responses[0].text)
        # The answers did grow with the data: one encounter per patient at the ward.
        census = logged_client.post("/dhos/v1/encounter/locations", json=[str(WARD_A)], headers=auth())
        assert len(census.json()) == len(patients)
