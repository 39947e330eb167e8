"""The FHIR search (sql/queries/fhir/search.sql) is driven by an index for each kind of search, as
the service runs it: prepared, on its first (custom) plan and on the plan it settles on after five
runs (tests/reliability/plans.py), on the encounters of test_plans_without_statistics (6,000, a
quarter of them moved out of one admissions ward), with three earlier stays each at other wards,
and one stay in 60 open, analyzed.

One query file serves every search: a filter not given is an empty array, and the conditions it
guards are folded away at planning. Were a plan to keep them (a generic plan), the location
search would scan the whole table.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from urllib.parse import parse_qsl

import psycopg
import pytest

from encounters_service.api.fhir import search_parameters
from encounters_service.db import connect_sync, session_options
from tests.conftest import template_clone
from tests.helpers import TEST_SETTINGS
from tests.reliability.plans import PLAN_MODES, encounter_scans, plan_of, shown
from tests.reliability.test_plans_without_statistics import arrange


@pytest.fixture(scope="module")
def loaded(pg_server, template_conninfo) -> Iterator[psycopg.Connection]:
    options = session_options(TEST_SETTINGS)  # as the service's sessions (no JIT)
    with template_clone(pg_server) as conninfo, connect_sync(conninfo, autocommit=True, options=options) as conn:
        arrange(conn)
        # The earlier stays, then each stored document rendered once (not once per stay, by trigger).
        conn.execute("ALTER TABLE encounters.location_history DISABLE TRIGGER USER")
        conn.execute(
            "INSERT INTO encounters.location_history"
            " (encounter_uuid, location_uuid, arrived_at, departed_at, created_by)"
            " SELECT e.uuid, md5('location' || (get_byte(uuid_send(e.uuid), 2) + k) % 200)::uuid,"
            " e.admitted_at - k * INTERVAL '1 day', e.admitted_at - (k - 1) * INTERVAL '1 day', 'arranger'"
            " FROM encounters.encounter AS e CROSS JOIN generate_series(1, 3) AS k"
        )
        conn.execute("ALTER TABLE encounters.location_history ENABLE TRIGGER USER")
        conn.execute(  # and, as in a hospital, few of the stays open: one in 20 of the last ones, 100
            "UPDATE encounters.encounter SET document = NULL, discharged_at = CASE"
            " WHEN discharged_at IS NULL AND get_byte(uuid_send(uuid), 3) % 20 <> 0 THEN admitted_at + INTERVAL '1 day'"
            " ELSE discharged_at END"
        )
        conn.execute("ANALYZE")
        yield conn


def as_psql(value: object) -> str:
    """A query file parameter as text, as psql -v passes it."""
    if isinstance(value, list):
        return "{" + ",".join(f'"{as_psql(item)}"' for item in value) + "}"
    if isinstance(value, bool):
        return str(value).lower()
    return value.isoformat() if isinstance(value, datetime) else str(value)


def params(conn: psycopg.Connection, query: str) -> dict[str, str]:
    ids = {name: str(conn.execute(f"SELECT md5('{name}')::uuid").fetchone()[0]) for name in ("admissions", "patient0")}
    found = search_parameters(parse_qsl(query.format(**ids)), "http://x/fhir/R4", "urn:x")
    return {name: as_psql(value) for name, value in found.items()}


# Per search: the encounter indexes that may drive it (and none other, and no sequential scan).
SEARCHES = {
    "location=Location/{admissions}&status=in-progress&_count=1000": {
        "encounter_location_idx",
        "encounter_pkey",
        "location_history_location_idx",
        "encounter_open_idx",
    },
    "patient=Patient/{patient0}&_sort=-date": {"encounter_patient_idx", "encounter_pkey"},
    "_count=50": {"encounter_pkey"},  # every encounter, in the default order: the primary key's
    "_count=50&_cursor=i80000000-0000-0000-0000-000000000000": {"encounter_pkey"},  # a later page starts there
}


@pytest.mark.parametrize("mode", PLAN_MODES)
@pytest.mark.parametrize("search", SEARCHES)
def test_each_search_is_driven_by_its_index(loaded, search, mode):
    plan = plan_of(loaded, "fhir.search", params(loaded, search), mode)
    scans = encounter_scans(plan)
    assert {scan.index for scan in scans} <= SEARCHES[search] | {None}, shown(plan)
    assert not [scan for scan in scans if scan.node == "Seq Scan"], shown(plan)
    assert scans, shown(plan)
