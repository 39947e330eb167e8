""" "Latest" means one thing everywhere. The census query (open_at_locations.sql) picks each
patient's latest encounter with DISTINCT ON over the whole census, for speed, instead of calling
encounters_api.latest_encounter once per patient; this test holds the two to the same answer on
data built to separate every step of the ordering (open first, newest admission, newest creation,
then uuid)."""

from __future__ import annotations

import itertools
import json
from uuid import UUID, uuid4

from encounters_service.db import run_sync
from encounters_service.sqlfiles import load_queries
from tests.queries.arrange import WARD_A, WARD_B, insert_encounter

ADMISSIONS = ("2020-01-01T08:00:00Z", "2020-01-02T08:00:00Z")
DISCHARGES = (None, "2020-01-03T08:00:00Z", "2020-01-05T08:00:00Z")
CREATED = ("2020-01-01T09:00:00Z", "2020-01-01T10:00:00Z")
OPEN_AS_OF = ("infinity", "2020-01-04T00:00:00Z", "2020-01-01T12:00:00Z")


def arrange_patients(db) -> list[UUID]:
    """Each patient has two EPR encounters differing in one or more ordering keys."""
    patients = []
    variants = list(itertools.product(ADMISSIONS, DISCHARGES, CREATED, (WARD_A, WARD_B)))
    for first, second in itertools.combinations(variants, 2):
        patient = uuid4()
        for admitted_at, discharged_at, created, ward in (first, second):
            insert_encounter(
                db,
                patient_uuid=patient,
                epr_encounter_id=str(uuid4()),
                admitted_at=admitted_at,
                discharged_at=discharged_at,
                created=created,
                location_uuid=ward,
            )
        patients.append(patient)
    return patients


def test_census_picks_what_latest_encounter_picks(db):
    arrange_patients(db)
    census = load_queries()["encounters.open_at_locations"]
    for open_as_of, wards in itertools.product(OPEN_AS_OF, ([WARD_A], [WARD_A, WARD_B])):
        [(document,)] = run_sync(db, census, location_ids=wards, open_as_of=open_as_of, compact=True)
        picked = {e["patient_uuid"]: e["uuid"] for e in json.loads(document)}
        expected = dict(
            db.execute(
                """
                SELECT p.patient_uuid::text, l.uuid::text
                FROM (SELECT DISTINCT patient_uuid FROM encounters.encounter) AS p
                CROSS JOIN LATERAL encounters_api.latest_encounter(p.patient_uuid, %s, %s) AS l
                """,
                [wards, open_as_of],
            ).fetchall()
        )
        assert picked == expected, f"open_as_of={open_as_of}, wards={len(wards)}"
        assert len(picked) > 50  # the data does exercise the choice
