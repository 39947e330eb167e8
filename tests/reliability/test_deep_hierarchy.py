"""Deep and wide hierarchies: one parent with 10,000 children, and a chain of 151 encounters.

Before: after ANALYZE, the planner expected 10,000 children under every encounter, so each
encounter's descendants were found by a merge join over the whole parent index and a UNION hash
table sized for 100,000 rows, built per encounter. The parent patient's list with
show_children=true took over 5 s (503) on every call, every other patient's full form paid for it
too, and 30 such requests from one read-only token took the whole pool, so other callers got 503.

Now: descendants are found by one parent-index probe per encounter found, whatever the statistics
(sql/functions/encounters_api.descendants.sql); an answer lists at most 10,000 descendants (else
422, before anything is rendered); and one caller's heavy reads get a share of the pool, not all
of it (encounters_service/api/read_gate.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import httpx
import psycopg
import pytest

from encounters_service.app import create_app
from encounters_service.auth import READ_SCOPE
from encounters_service.db import connect_sync, session_options
from tests.conftest import served_in_thread, template_clone
from tests.helpers import TEST_SETTINGS, as_app, auth
from tests.reliability.plans import PLAN_MODES, encounter_scans, function_plans, plan_of, shown

CHILDREN = 10_000
CHAIN = 151  # 151 * 150 / 2 = 11,325 descendants listed in all by the chain's patient: over the limit
OTHERS = 2_000  # ordinary patients, three stays each

LIST = "/dhos/v2/encounter"
ONE_CALLER = auth(READ_SCOPE, clinician_id="flooding-reader")
ANOTHER_CALLER = auth(READ_SCOPE, clinician_id="ward-clerk")


@dataclass(frozen=True)
class Hierarchy:
    conninfo: str
    parent: str
    parent_patient: str
    other_patient: str


ARRANGE = """
INSERT INTO encounters.encounter (
    uuid, patient_uuid, patient_record_uuid, location_uuid, dh_product_uuid, admitted_at, discharged_at,
    encounter_type, score_system, child_of_encounter_uuid, created_by, modified_by)
SELECT md5('other' || i)::uuid, md5('other patient' || i / 3)::uuid, md5('other record' || i / 3)::uuid,
    md5('ward' || i %% 100)::uuid, md5('product')::uuid, TIMESTAMPTZ '2020-01-01' + i * INTERVAL '1 hour',
    CASE WHEN i %% 3 <> 2 THEN TIMESTAMPTZ '2020-01-02' + i * INTERVAL '1 hour' END,
    'INPATIENT', 'news2', NULL::uuid, 'arranger', 'arranger'
FROM generate_series(0, 3 * %(others)s - 1) AS g (i)
UNION ALL
SELECT md5('parent')::uuid, md5('parent patient')::uuid, md5('parent record')::uuid, md5('ward0')::uuid,
    md5('product')::uuid, TIMESTAMPTZ '2020-01-01', NULL, 'INPATIENT', 'news2', NULL, 'arranger', 'arranger'
"""
ARRANGE_CHILDREN = """
INSERT INTO encounters.encounter (
    uuid, patient_uuid, patient_record_uuid, location_uuid, dh_product_uuid, admitted_at, discharged_at,
    encounter_type, score_system, child_of_encounter_uuid, created_by, modified_by)
SELECT md5('child' || i)::uuid, md5('parent patient')::uuid, md5('parent record')::uuid, md5('ward0')::uuid,
    md5('product')::uuid, TIMESTAMPTZ '2020-01-01' + i * INTERVAL '1 second',
    TIMESTAMPTZ '2020-01-02' + i * INTERVAL '1 second', 'INPATIENT', 'news2', md5('parent')::uuid,
    'arranger', 'arranger'
FROM generate_series(1, %(children)s) AS g (i)
"""
# One statement per link: each encounter's parent must exist when it is inserted.
CHAIN_LINK = """
INSERT INTO encounters.encounter (
    uuid, patient_uuid, patient_record_uuid, location_uuid, dh_product_uuid, admitted_at, discharged_at,
    encounter_type, score_system, child_of_encounter_uuid, created_by, modified_by)
SELECT md5('link' || i)::uuid, md5('chain patient')::uuid, md5('chain record')::uuid, md5('ward1')::uuid,
    md5('product')::uuid, TIMESTAMPTZ '2021-01-01' + i * INTERVAL '1 hour',
    TIMESTAMPTZ '2021-01-01' + i * INTERVAL '1 hour', 'INPATIENT', 'news2',
    CASE WHEN i > 0 THEN md5('link' || i - 1)::uuid END, 'arranger', 'arranger'
FROM (SELECT %(link)s::integer AS i) AS link
"""


@pytest.fixture(scope="module")
def hierarchy(pg_server, template_conninfo) -> Iterator[Hierarchy]:
    with template_clone(pg_server) as conninfo, connect_sync(conninfo, autocommit=True) as conn:
        conn.execute(ARRANGE, {"others": OTHERS})
        conn.execute(ARRANGE_CHILDREN, {"children": CHILDREN})
        conn.execute("ANALYZE encounters.encounter")
        yield Hierarchy(
            conninfo,
            parent=md5_uuid(conn, "parent"),
            parent_patient=md5_uuid(conn, "parent patient"),
            other_patient=md5_uuid(conn, "other patient7"),
        )


@pytest.fixture
def chain_patient(db: psycopg.Connection) -> str:
    """A patient whose CHAIN encounters each are the child of the one before."""
    for link in range(CHAIN):
        db.execute(CHAIN_LINK, {"link": link})
    return md5_uuid(db, "chain patient")


def md5_uuid(conn: psycopg.Connection, text: str) -> str:
    return str(conn.execute("SELECT md5(%s)::uuid", [text]).fetchone()[0])


def full_list(patient: str, **flags: str) -> dict[str, str]:
    return {"patient_id": patient, "show_children": "true", **flags}


def test_descendant_plans_at_10000_children_probe_the_parent_index(hierarchy):
    """After ANALYZE, with 10,000 children under one parent: every read that lists descendants
    finds them by parent-index probes in a nested loop, never a merge or hash join, never a
    sequential scan, for the parent's patient as for any other."""
    params = dict(compact=False, expanded=False, show_deleted=False, show_children=True, epr_encounter_id="")
    calls = {
        "by_patient_or_epr_id": [
            dict(params, patient_id=p) for p in (hierarchy.parent_patient, hierarchy.other_patient)
        ],
        "latest": [dict(patient_id=hierarchy.parent_patient, open_as_of="-infinity", compact=False)],
        "latest_per_patient": [
            dict(
                patient_ids=f"{{{hierarchy.parent_patient},{hierarchy.other_patient}}}",
                open_as_of="-infinity",
                compact=False,
            )
        ],
        "descendants": [dict(encounter_id=hierarchy.parent, show_deleted=False)],
    }
    with psycopg.connect(hierarchy.conninfo, autocommit=True, options=session_options(TEST_SETTINGS)) as conn:
        # The statistics say: one parent value, for most of the rows (so: 10,000 children per parent).
        assert conn.execute(
            "SELECT n_distinct, most_common_freqs[1] > 0.5 FROM pg_stats"
            " WHERE tablename = 'encounter' AND attname = 'child_of_encounter_uuid'"
        ).fetchone() == (1, True)
        for name, param_list in calls.items():
            for call in param_list:
                # The list reads find the descendants in encounters_api.child_encounter_uuids: its plans too.
                nested = function_plans(conn, f"encounters.{name}", call)
                assert nested or name == "descendants", f"no plan of child_encounter_uuids for {name}"
                for mode in PLAN_MODES:
                    plan = plan_of(conn, f"encounters.{name}", call, mode)
                    found = encounter_scans(plan) + [scan for inner in nested for scan in encounter_scans(inner)]
                    where = f"{name} {mode} {call}:\n{shown(plan)}\n" + "\n".join(shown(inner) for inner in nested)
                    probes = [s for s in found if s.index == "encounter_parent_idx"]
                    assert probes, f"no parent-index probe in {where}"
                    assert not [s for s in found if s.join in ("Merge Join", "Hash Join")], where
                    # The parent's patient has most of the table's rows: reading them may rightly be
                    # a sequential scan. Nothing else may be.
                    reads_most = hierarchy.parent_patient in str(call)
                    seq_scans = [s for s in found if s.node == "Seq Scan" and s.relation == "encounter"]
                    assert len(seq_scans) <= reads_most, where


def test_the_parent_patients_list_with_children_answers_in_bounded_time(hierarchy):
    with (
        served_in_thread(create_app(TEST_SETTINGS, as_app(hierarchy.conninfo))) as base_url,
        httpx.Client(base_url=base_url, headers=ONE_CALLER, timeout=30) as http,
    ):
        started = time.monotonic()
        answer = http.get(LIST, params=full_list(hierarchy.parent_patient))
        took = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        encounters = answer.json()
        assert len(encounters) == CHILDREN + 1
        parent = next(e for e in encounters if e["uuid"] == hierarchy.parent)
        assert len(parent["child_encounter_uuids"]) == CHILDREN
        assert took < 4, f"{took:.1f} s for the parent patient's list (the statement timeout is 5 s)"
        children = http.get(f"/dhos/v1/encounter/{hierarchy.parent}/children")
        assert children.status_code == 200 and len(children.json()) == CHILDREN


def test_an_answer_lists_at_most_10000_descendants(fresh_database, db, chain_patient):
    """The chain's patient lists 11,325 descendants in all (each link all those below it): refused
    quickly, with a message; the compact form (which lists none), the first link's children (150)
    and the latest encounter (the first link) are answered."""
    with (
        served_in_thread(create_app(TEST_SETTINGS, as_app(fresh_database))) as base_url,
        httpx.Client(base_url=base_url, headers=ONE_CALLER, timeout=30) as http,
    ):
        started = time.monotonic()
        refused = http.get(LIST, params=full_list(chain_patient))
        assert time.monotonic() - started < 2
        assert refused.status_code == 422
        assert "more than 10000 descendant encounters" in refused.json()["message"]
        compact = http.get(LIST, params=full_list(chain_patient, compact="true"))
        assert compact.status_code == 200 and len(compact.json()) == CHAIN
        first_link = md5_uuid(db, "link0")
        below = http.get(f"/dhos/v1/encounter/{first_link}/children")
        assert below.status_code == 200 and len(below.json()) == CHAIN - 1
        latest = http.get("/dhos/v2/encounter/latest", params={"patient_id": chain_patient})
        assert latest.status_code == 200 and len(latest.json()["child_encounter_uuids"]) == CHAIN - 1


def test_one_callers_flood_of_heavy_reads_leaves_other_callers_served(hierarchy):
    """30 parallel requests for the parent patient's full list from one read-only token, for
    FLOOD_SECONDS, while another caller reads an ordinary patient's list: the other caller gets
    every answer, each within 2 s; the flood gets 200s, or 503s with Retry-After within 2 s."""
    flood_seconds, flooders = 6.0, 30
    settings = replace(TEST_SETTINGS, pool_max_size=6)  # heavy reads: 3 per caller, 4 in all
    flood: list[tuple[int, float, str | None]] = []
    others: list[tuple[int, float]] = []
    with served_in_thread(create_app(settings, as_app(hierarchy.conninfo))) as base_url:
        deadline = time.monotonic() + flood_seconds

        def flood_requests() -> None:
            with httpx.Client(base_url=base_url, headers=ONE_CALLER, timeout=30) as http:
                while time.monotonic() < deadline:
                    started = time.monotonic()
                    answer = http.get(LIST, params=full_list(hierarchy.parent_patient))
                    flood.append((answer.status_code, time.monotonic() - started, answer.headers.get("retry-after")))

        threads = [threading.Thread(target=flood_requests) for _ in range(flooders)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # let the flood take what it can
        with httpx.Client(base_url=base_url, headers=ANOTHER_CALLER, timeout=30) as http:
            while time.monotonic() < deadline:
                started = time.monotonic()
                answer = http.get(LIST, params=full_list(hierarchy.other_patient))
                others.append((answer.status_code, time.monotonic() - started))
        for thread in threads:
            thread.join(timeout=60)
    print(
        f"\nflood: {len(flood)} answers {sorted({s for s, _, _ in flood})}; other caller: {len(others)} answers,"
        f" slowest {max(t for _, t in others):.2f} s"
    )
    assert others and all(status == 200 for status, _ in others), others
    assert max(took for _, took in others) < 2, sorted(took for _, took in others)[-5:]
    assert {status for status, _, _ in flood} <= {200, 503}
    refused = [(took, retry) for status, took, retry in flood if status == 503]
    assert all(retry == "1" and took < 2 for took, retry in refused), refused[:5]
