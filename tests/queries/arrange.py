"""Arrange encounters for read tests with plain SQL inserts (not through the write routes)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import sql

WARD_A = UUID("a0000000-0000-4000-8000-00000000000a")
WARD_B = UUID("b0000000-0000-4000-8000-00000000000b")
PRODUCT = UUID("d0000000-0000-4000-8000-0000000000d0")


def _insert(db: psycopg.Connection, table: str, row: dict[str, Any], returning: str) -> Any:
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        sql.Identifier("encounters", table),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row)),
        sql.Identifier(returning),
    )
    return db.execute(statement, list(row.values())).fetchone()[0]


def insert_encounter(db: psycopg.Connection, **fields: Any) -> UUID:
    """A top-level, open, local encounter of a new patient at WARD_A, unless `fields` say otherwise.

    `created` and `modified` default to the time of the insert, so later inserts sort as newer.
    """
    patient = fields.get("patient_uuid") or uuid4()
    row = {
        "patient_uuid": patient,
        "patient_record_uuid": uuid4(),
        "location_uuid": WARD_A,
        "dh_product_uuid": PRODUCT,
        "admitted_at": "2020-01-01T08:00:00Z",
        "encounter_type": "INPATIENT",
        "score_system": "news2",
        "created_by": "arranger",
        "modified_by": "arranger",
        **fields,
    }
    return _insert(db, "encounter", row, "uuid")


def insert_location_history(db: psycopg.Connection, encounter: UUID, **fields: Any) -> int:
    row = {
        "encounter_uuid": encounter,
        "location_uuid": WARD_B,
        "arrived_at": "2020-01-01T08:00:00Z",
        "departed_at": "2020-01-01T09:00:00Z",
        "created_by": "arranger",
        **fields,
    }
    return _insert(db, "location_history", row, "id")


def insert_score_system_history(db: psycopg.Connection, encounter: UUID, **fields: Any) -> UUID:
    row = {
        "encounter_uuid": encounter,
        "changed_time": "2020-01-01T10:00:00Z",
        "score_system": "news2",
        "previous_score_system": "news2",
        "spo2_scale": 2,
        "previous_spo2_scale": 1,
        "created_by": "arranger",
        "changed_by": "arranger",
        "modified_by": "arranger",
        **fields,
    }
    return _insert(db, "score_system_history", row, "uuid")


def update_encounter(db: psycopg.Connection, encounter: UUID, **fields: Any) -> None:
    """Change columns of an arranged encounter (e.g. discharge or delete it)."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder()) for column in fields
    )
    db.execute(
        sql.SQL("UPDATE encounters.encounter SET {} WHERE uuid = %s").format(assignments),
        [*fields.values(), encounter],
    )
