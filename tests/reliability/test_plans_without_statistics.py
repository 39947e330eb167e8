"""Every read query's plan is driven by the right index, whether or not the tables have statistics.

Right after a bulk load (an import, a restore, the bench's seed) and before autovacuum's first
ANALYZE, the planner has no statistics: it then takes `x IS NULL` to hold for 0.5% of the rows,
so a partial index on `deleted_at IS NULL AND child_of_encounter_uuid IS NULL` looks nearly empty
and walking all of it looks cheaper than a look-up by patient (it was: 390 ms instead of 15 ms for
100 patients on 5,900 rows). Here the encounter tables get about 6,000 rows and no statistics,
then every query file of sql/queries/encounters is explained, prepared as the service runs it
(tests/reliability/plans.py: its first, custom plan and the plan it settles on after five runs);
then again after ANALYZE. Each must scan the encounter
tables through its index, and nothing else (no sequential scan, no other index of the encounter
table).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from encounters_service import migrate
from encounters_service.db import connect_sync, session_options
from tests.conftest import template_clone
from tests.helpers import TEST_SETTINGS
from tests.reliability.plans import ENCOUNTER_TABLES, PLAN_MODES, QUERIES, encounter_scans, plan_of, shown

PATIENTS = 2_000  # three stays each: 6,000 encounters
LOCATIONS = 200
# An encounter's histories, by either of location_history's indexes that lead with encounter_uuid.
HISTORY_INDEXES = {
    "location_history_encounter_idx",
    "location_history_departure_idx",
    "score_system_history_encounter_idx",
}

# Per query file: the index that drives it, the other encounter indexes it may use, its parameters.
EXPECTED = {
    "by_patient_open_as_of": ("encounter_patient_idx", {"encounter_parent_idx"}),
    "by_patient_or_epr_id": ("encounter_patient_idx", {"encounter_epr_id_idx", "encounter_parent_idx"}),
    "changes": ("encounter_change_idx", set()),
    "descendants": ("encounter_parent_idx", set()),
    "latest": ("encounter_patient_idx", {"encounter_parent_idx"}),
    "latest_per_patient": ("encounter_patient_idx", {"encounter_parent_idx"}),
    "modified_since": ("encounter_modified_idx", set()),
    "open_at_locations": ("encounter_location_current_idx", set()),
    "open_for_patients": ("encounter_patient_idx", set()),
    "patient_count_per_location": ("encounter_location_current_idx", set()),
}


def arrange(conn: psycopg.Connection) -> None:
    """PATIENTS patients with three stays each (the last one open), at LOCATIONS wards; one stay
    in 4 moved ward, one in 5 changed score system; one in 50 has a child. Autovacuum is off for
    these tables, and what statistics they had are removed."""
    for table in ENCOUNTER_TABLES:
        conn.execute(f"ALTER TABLE encounters.{table} SET (autovacuum_enabled = false)")
    conn.execute(
        """
        INSERT INTO encounters.encounter (
            uuid, patient_uuid, patient_record_uuid, location_uuid, dh_product_uuid, admitted_at,
            discharged_at, encounter_type, score_system, child_of_encounter_uuid, created_by, modified_by, modified)
        SELECT md5('encounter' || i)::uuid, md5('patient' || i %% %(patients)s)::uuid,
            md5('record' || i %% %(patients)s)::uuid, md5('location' || i %% %(locations)s)::uuid,
            md5('product')::uuid, TIMESTAMPTZ '2020-01-01' + i * INTERVAL '1 hour',
            CASE WHEN i < 2 * %(patients)s THEN TIMESTAMPTZ '2020-01-02' + i * INTERVAL '1 hour' END,
            'INPATIENT', 'news2',
            CASE WHEN i >= %(patients)s AND i < 2 * %(patients)s AND i %% 50 = 0
                THEN md5('encounter' || (i - %(patients)s))::uuid END,
            'arranger', 'arranger', TIMESTAMPTZ '2021-01-01' + i * INTERVAL '1 minute'
        FROM generate_series(0, 3 * %(patients)s - 1) AS g (i)
        """,
        {"patients": PATIENTS, "locations": LOCATIONS},
    )
    conn.execute(
        """
        INSERT INTO encounters.location_history (encounter_uuid, location_uuid, arrived_at, departed_at, created_by)
        SELECT uuid, md5('admissions')::uuid, admitted_at, admitted_at + INTERVAL '1 hour', 'arranger'
        FROM encounters.encounter WHERE get_byte(uuid_send(uuid), 0) % 4 = 0
        """
    )
    conn.execute(
        """
        INSERT INTO encounters.score_system_history (
            encounter_uuid, changed_time, score_system, previous_score_system, created_by, changed_by, modified_by)
        SELECT uuid, admitted_at + INTERVAL '2 hours', 'news2', 'news2', 'arranger', 'arranger', 'arranger'
        FROM encounters.encounter WHERE get_byte(uuid_send(uuid), 1) % 5 = 0
        """
    )
    conn.execute(
        "DELETE FROM pg_statistic"
        " WHERE starelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'encounters'::regnamespace)"
    )


def parameters(conn: psycopg.Connection) -> dict[str, dict]:
    """Realistic parameters for each read query file."""

    def one(query: str) -> str:
        return str(conn.execute(query).fetchone()[0])

    patients = "{" + ",".join(one(f"SELECT md5('patient' || {i})::uuid") for i in range(0, 100)) + "}"
    # A census of 5 wards of 200: for a quarter of the hospital a sequential scan may rightly win.
    locations = "{" + ",".join(one(f"SELECT md5('location' || {i})::uuid") for i in range(0, 5)) + "}"
    patient = one("SELECT md5('patient' || 0)::uuid")
    parent = one(
        "SELECT child_of_encounter_uuid FROM encounters.encounter WHERE child_of_encounter_uuid IS NOT NULL LIMIT 1"
    )
    recent = one("SELECT modified FROM encounters.encounter ORDER BY modified DESC OFFSET 100 LIMIT 1")
    return {
        "by_patient_open_as_of": dict(
            patient_id=patient, epr_encounter_id="", open_as_of="2020-03-01T00:00:00Z", compact=False, expanded=False
        ),
        "by_patient_or_epr_id": dict(
            patient_id=patient,
            epr_encounter_id="",
            compact=False,
            expanded=False,
            show_deleted=False,
            show_children=True,
        ),
        "changes": dict(after_transaction="0", after_uuid=str(uuid.UUID(int=0)), page_size=100),
        "descendants": dict(encounter_id=parent, show_deleted=False),
        "latest": dict(patient_id=patient, open_as_of="-infinity", compact=False),
        "latest_per_patient": dict(patient_ids=patients, open_as_of="-infinity", compact=False),
        "modified_since": dict(
            modified_since=recent, compact=False, expanded=False, show_deleted=False, show_children=False
        ),
        "open_at_locations": dict(location_ids=locations, open_as_of="infinity", compact=False),
        "open_for_patients": dict(patient_ids=patients, open_as_of="infinity", compact=False),
        "patient_count_per_location": dict(location_ids=locations, open_as_of="infinity"),
    }


@pytest.fixture(scope="module")
def loaded(pg_server, template_conninfo) -> Iterator[psycopg.Connection]:
    options = session_options(TEST_SETTINGS)  # as the service's sessions (no JIT)
    with template_clone(pg_server) as conninfo, connect_sync(conninfo, autocommit=True, options=options) as conn:
        arrange(conn)
        yield conn


def check_plans(conn: psycopg.Connection, name: str, params: dict) -> None:
    driving, others = EXPECTED[name]
    allowed = {driving} | others | HISTORY_INDEXES
    for mode in PLAN_MODES:
        plan = plan_of(conn, f"encounters.{name}", params, mode)
        found = encounter_scans(plan)
        where = f"{name} ({mode}):\n{shown(plan)}"
        assert not [s for s in found if s.node == "Seq Scan"], f"sequential scan in {where}"
        indexes = {s.index for s in found if s.index}
        assert indexes <= allowed, f"unexpected index in {where}"
        assert driving in indexes, f"{driving} not used in {where}"
        assert not [s for s in found if s.join in ("Merge Join", "Hash Join")], f"merge or hash join in {where}"


def test_every_read_query_file_has_an_expectation():
    assert sorted(EXPECTED) == sorted(n.split(".", 1)[1] for n in QUERIES if n.startswith("encounters."))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_plan_without_statistics(loaded, name):
    stats = loaded.execute(
        "SELECT count(*) FROM pg_statistic WHERE starelid = 'encounters.encounter'::regclass"
    ).fetchone()[0]
    assert stats == 0
    check_plans(loaded, name, parameters(loaded)[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_plan_after_analyze(loaded, name):
    loaded.execute("ANALYZE encounters.encounter, encounters.location_history, encounters.score_system_history")
    try:
        check_plans(loaded, name, parameters(loaded)[name])
    finally:
        loaded.execute(
            "DELETE FROM pg_statistic WHERE starelid IN"
            " (SELECT oid FROM pg_class WHERE relnamespace = 'encounters'::regnamespace)"
        )


def test_migrate_upgrade_ends_with_analyze(loaded):
    """`migrate upgrade` on a database loaded without statistics leaves it with statistics."""

    def statistics() -> int:
        return loaded.execute(
            "SELECT count(*) FROM pg_statistic WHERE starelid = 'encounters.encounter'::regclass"
        ).fetchone()[0]

    assert statistics() == 0
    migrate.upgrade(loaded.info.dsn)
    assert statistics() > 0
