"""32 concurrent clients read and write for LOAD_SECONDS (env; 15 in CI, 30 for the long run)
against `encounters-service serve` as production runs it, on loopback. They compete on purpose:
a few patients (one open local encounter each), a few EPR ids (one live encounter each), moves of
the same encounters, discharges, deletions and record merges. Afterwards: no 5xx, no duplicate,
every location history a consistent chain, every committed change's event recorded exactly once.

run_load and assert_load_held are also what tests/relay/test_many_instances.py runs, with the
clients spread over two instances.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from tests.api.test_encounter_writes import ENCOUNTERS, create_body, encounter_url
from tests.helpers import SERVICE_ENV, Service, as_app, auth

CLIENTS = 32
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "15"))
PATIENTS = [str(uuid.UUID(int=n + 1)) for n in range(20)]
RECORDS = [str(uuid.UUID(int=n + 1001)) for n in range(10)]
WARDS = [str(uuid.UUID(int=n + 2001)) for n in range(5)]
EPR_IDS = [f"EPR-{n}" for n in range(30)]
HEADERS = auth()
STARTED = datetime.now(UTC)


@dataclass
class Tally:
    """What the clients saw: statuses per kind of request, and the writes answered 200."""

    statuses: Counter = field(default_factory=Counter)
    instances: Counter = field(default_factory=Counter)  # base URL → requests sent to it
    encounters: list[str] = field(default_factory=list)
    moves: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # encounter → new locations
    patches: Counter = field(default_factory=Counter)  # encounter → discharges and deletions
    failures: list[str] = field(default_factory=list)
    instants: Iterator[int] = field(default_factory=itertools.count)
    elapsed: float = 0.0  # seconds the load ran


async def client(base_url: str, number: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(number)  # each client its own fixed sequence of choices
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS, timeout=30) as http:
        while time.monotonic() < deadline:
            kind, request = pick(rng, tally)
            tally.instances[base_url] += 1
            try:
                response = await request(http)
            except httpx.TransportError as error:
                tally.statuses[kind, None] += 1
                tally.failures.append(f"{kind}: {error!r}")
                continue
            tally.statuses[kind, response.status_code] += 1
            if response.status_code >= 500:
                tally.failures.append(f"{kind}: {response.status_code} {response.text}")
            elif response.status_code == 200:
                record(kind, request, response, tally)


def pick(rng: random.Random, tally: Tally):
    """A request: about half writes, half reads."""
    known = rng.choice(tally.encounters) if tally.encounters else None
    # A new millisecond each time: a discharge or deletion always changes what the API shows.
    now = (STARTED + timedelta(milliseconds=next(tally.instants))).isoformat()
    roll = rng.random()
    placed = {"location_uuid": rng.choice(WARDS), "patient_record_uuid": rng.choice(RECORDS)}
    if roll < 0.12 or known is None:
        body = create_body(patient_uuid=rng.choice(PATIENTS), **placed)
        return "create local", lambda http: http.post(ENCOUNTERS, json=body)
    if roll < 0.20:
        body = create_body(epr_encounter_id=rng.choice(EPR_IDS), **placed)
        return "create EPR", lambda http: http.post(ENCOUNTERS, json=body)
    if roll < 0.38:
        move = {"location_uuid": str(uuid.uuid4())}  # a new place each time: every move is a change
        return "move", Write(known, move, lambda http: http.patch(encounter_url(known), json=move))
    if roll < 0.44:
        change = {rng.choice(["discharged_at", "deleted_at"]): now}
        return "discharge or delete", Write(known, change, lambda http: http.patch(encounter_url(known), json=change))
    if roll < 0.47:
        child, parent = rng.sample(RECORDS, 2)
        merge = {
            "child_record_uuid": child,
            "parent_record_uuid": parent,
            "parent_patient_uuid": rng.choice(PATIENTS),
            "message_uuid": str(uuid.uuid4()),
        }
        return "merge", lambda http: http.post("/dhos/v1/encounter/merge", json=merge)
    reads = [
        ("list", lambda http: http.get(ENCOUNTERS, params={"patient_id": rng.choice(PATIENTS), "show_deleted": True})),
        ("latest", lambda http: http.get("/dhos/v2/encounter/latest", params={"patient_id": rng.choice(PATIENTS)})),
        ("latest of many", lambda http: http.post("/dhos/v2/encounter/latest", json=PATIENTS)),
        ("ward census", lambda http: http.post("/dhos/v1/encounter/locations", json=WARDS)),
        ("patient count", lambda http: http.post("/dhos/v1/encounter/locations/patient_count", json=WARDS)),
        ("by id", lambda http: http.get(encounter_url(known), params={"show_deleted": True})),
        ("changed since", lambda http: http.get("/dhos/v2/encounters", params={"modified_since": now})),
    ]
    return rng.choice(reads)


@dataclass
class Write:
    """A PATCH of an encounter: remembered by `record` when it is answered 200."""

    encounter: str
    change: dict
    send: object

    def __call__(self, http: httpx.AsyncClient):
        return self.send(http)


def record(kind: str, request, response: httpx.Response, tally: Tally) -> None:
    if kind.startswith("create"):
        tally.encounters.append(response.json()["uuid"])
    elif kind == "move":
        tally.moves[request.encounter].add(request.change["location_uuid"])
    elif kind == "discharge or delete":
        tally.patches[request.encounter] += 1


async def run_load(base_urls: Sequence[str], seconds: float = LOAD_SECONDS) -> Tally:
    """CLIENTS clients for `seconds`, client n on instance n mod len(base_urls)."""
    tally = Tally()
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(client(base_urls[number % len(base_urls)], number, deadline, tally) for number in range(CLIENTS))
    )
    tally.elapsed = time.monotonic() - started
    return tally


def test_32_clients_mixed_reads_and_writes(fresh_database, db):
    with Service.start({**SERVICE_ENV, "DATABASE_URL": as_app(fresh_database)}) as service:
        service.wait_until_running()
        tally = asyncio.run(run_load([service.base_url]))
        output = service.stop()
    assert_load_held(db, tally)
    assert "Traceback" not in output


def assert_load_held(db: psycopg.Connection, tally: Tally) -> None:
    """Every check of the load: no 5xx or lost answer, no duplicate, location histories are chains,
    one event per committed change; prints what the clients saw."""
    total = sum(tally.statuses.values())
    by_status = Counter()
    for (_, status), count in tally.statuses.items():
        by_status[status] += count
    duplicates = duplicate_open_local(db) + duplicate_live_epr_ids(db)
    print(
        f"\nload: {CLIENTS} clients, {tally.elapsed:.1f} s, {total} requests ({total / tally.elapsed:.0f}/s), "
        f"per instance {dict(tally.instances)}, statuses {dict(sorted(by_status.items(), key=str))}, "
        f"5xx or no answer: {len(tally.failures)}, duplicates found: {len(duplicates)}"
    )
    assert tally.failures == []
    assert duplicates == []
    assert_location_histories_are_chains(db, tally)
    assert_one_event_per_committed_change(db, tally)


def duplicate_open_local(db: psycopg.Connection) -> list[tuple]:
    return db.execute(
        "SELECT patient_uuid, count(*) FROM encounters.encounter"
        " WHERE epr_encounter_id IS NULL AND child_of_encounter_uuid IS NULL"
        " AND discharged_at IS NULL AND deleted_at IS NULL"
        " GROUP BY patient_uuid HAVING count(*) > 1"
    ).fetchall()


def duplicate_live_epr_ids(db: psycopg.Connection) -> list[tuple]:
    return db.execute(
        "SELECT epr_encounter_id, count(*) FROM encounters.encounter"
        " WHERE deleted_at IS NULL AND epr_encounter_id IS NOT NULL"
        " GROUP BY epr_encounter_id HAVING count(*) > 1"
    ).fetchall()


def assert_location_histories_are_chains(db: psycopg.Connection, tally: Tally) -> None:
    """Each stay starts where the previous one ended, the first at admission; one stay per move."""
    stays = defaultdict(list)
    rows = db.execute(
        "SELECT e.uuid::text, e.admitted_at, e.location_uuid::text, h.location_uuid::text, h.arrived_at, h.departed_at"
        " FROM encounters.encounter AS e JOIN encounters.location_history AS h ON h.encounter_uuid = e.uuid"
        " ORDER BY h.id"
    ).fetchall()
    current = {}
    for encounter, admitted_at, location, stay_location, arrived_at, departed_at in rows:
        stays[encounter].append((stay_location, arrived_at, departed_at))
        current[encounter] = (admitted_at, location)
    assert set(stays) == {encounter for encounter, moves in tally.moves.items() if moves}
    for encounter, chain in stays.items():
        admitted_at, location = current[encounter]
        assert chain[0][1] == admitted_at
        for (_, _, left), (_, arrived, departed) in itertools.pairwise(chain):
            assert arrived == left and departed >= arrived
        assert {stay for stay, _, _ in chain[1:]} | {location} >= tally.moves[encounter]
        assert len(chain) == len(tally.moves[encounter])


def assert_one_event_per_committed_change(db: psycopg.Connection, tally: Tally) -> None:
    """dhos.DM000007 once per create, move, discharge or deletion answered 200 and per encounter a
    merge moved; dhos.34837004 encounter_modified once per PATCH answered 200."""
    updates = Counter(
        encounter
        for (encounter,) in db.execute(
            "SELECT encounter_uuid::text FROM encounters.outbox WHERE routing_key = 'dhos.DM000007'"
        )
    )
    modified = Counter(
        encounter
        for (encounter,) in db.execute(
            "SELECT encounter_uuid::text FROM encounters.outbox"
            " WHERE routing_key = 'dhos.34837004' AND body ->> 'event_type' = 'encounter_modified'"
        )
    )
    merged = Counter(
        encounter for (encounter,) in db.execute("SELECT encounter_uuid::text FROM encounters.merge_history")
    )
    patched = {encounter: len(tally.moves[encounter]) + tally.patches[encounter] for encounter in tally.encounters}
    assert updates == Counter({encounter: 1 + patched[encounter] + merged[encounter] for encounter in tally.encounters})
    assert modified == Counter({encounter: count for encounter, count in patched.items() if count})
