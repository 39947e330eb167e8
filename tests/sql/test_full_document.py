"""encounters_api.full_document and child_encounter_uuids: the list reads' full form, taken from
the stored document (with child_encounter_uuids spliced into its text), must be byte for byte what
encounters_api.encounter_json renders, in every case: top-level or child, with or without
children, expanded or not, stored document present or missing."""

from __future__ import annotations

import itertools
import json
import uuid

import psycopg
import pytest

from tests.sql.test_write_functions import create

FULL_FORM = """
    SELECT
        encounters_api.full_document(e, d, %(expanded)s,
            CASE WHEN %(with_children)s THEN encounters_api.child_encounter_uuids(ARRAY[e.uuid]) END)::text,
        encounters_api.encounter_json(e, FALSE, %(expanded)s, %(with_children)s)::text
    FROM encounters.encounter AS e
    CROSS JOIN LATERAL (SELECT CASE WHEN %(stored)s THEN e.document END) AS s (d)
    WHERE e.uuid = %(uuid)s
"""


def family(db: psycopg.Connection) -> dict[str, dict]:
    """A parent with histories, two children (one deleted) and a grandchild."""
    parent = create(db, location_history=[{"location_uuid": str(uuid.uuid4())}], epr_encounter_id="EPR-1")
    child = create(db, patient_uuid=parent["patient_uuid"], child_of_encounter_uuid=parent["uuid"])
    deleted = create(db, patient_uuid=parent["patient_uuid"], child_of_encounter_uuid=parent["uuid"])
    db.execute("UPDATE encounters.encounter SET deleted_at = now() WHERE uuid = %s", [deleted["uuid"]])
    grandchild = create(db, patient_uuid=parent["patient_uuid"], child_of_encounter_uuid=child["uuid"])
    alone = create(db)
    return {"parent": parent, "child": child, "deleted": deleted, "grandchild": grandchild, "alone": alone}


@pytest.mark.parametrize(("expanded", "with_children", "stored"), list(itertools.product((False, True), repeat=3)))
def test_the_full_form_is_what_encounter_json_renders_byte_for_byte(db, expanded, with_children, stored):
    for name, encounter in family(db).items():
        params = {"expanded": expanded, "with_children": with_children, "stored": stored, "uuid": encounter["uuid"]}
        fast, rendered = db.execute(FULL_FORM, params).fetchone()
        assert fast == rendered, name


def test_child_encounter_uuids_lists_every_descendant_per_root_in_creation_order(db):
    members = family(db)
    roots = [members[name]["uuid"] for name in ("parent", "child", "alone")]
    (children,) = db.execute("SELECT encounters_api.child_encounter_uuids(%s::uuid[])::text", [roots]).fetchone()
    assert json.loads(children) == {
        members["parent"]["uuid"]: [members[name]["uuid"] for name in ("child", "deleted", "grandchild")],
        members["child"]["uuid"]: [members["grandchild"]["uuid"]],
    }


def test_child_encounter_uuids_refuses_more_than_ten_thousand_descendants(db):
    parent = create(db)
    db.execute(
        """
        INSERT INTO encounters.encounter (uuid, patient_uuid, patient_record_uuid, location_uuid, dh_product_uuid,
            admitted_at, score_system, child_of_encounter_uuid, created_by, modified_by)
        SELECT gen_random_uuid(), e.patient_uuid, e.patient_record_uuid, e.location_uuid, e.dh_product_uuid,
            e.admitted_at, e.score_system, e.uuid, 'importer', 'importer'
        FROM encounters.encounter AS e, generate_series(1, 10001)
        WHERE e.uuid = %s
        """,
        [parent["uuid"]],
    )
    with pytest.raises(psycopg.Error) as refused:
        db.execute("SELECT encounters_api.child_encounter_uuids(%s::uuid[])", [[parent["uuid"]]])
    assert refused.value.sqlstate == "EN422"
    assert "more than 10000 descendant encounters" in str(refused.value)
