"""encounters_api.fhir_encounter: an encounter as a FHIR R4 Encounter, built in SQL, as an analyst
selects it. Every resource is validated with PyPI's fhir.resources (its R4B models), and the
mapping of docs/api.md "FHIR" is checked field by field."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from fhir.resources.R4B.encounter import Encounter

from tests.sql.test_write_functions import create

SYSTEM = "urn:example:epr"
EXTENSION = "http://encounters-service/fhir/StructureDefinition/"


def fhir(db: psycopg.Connection, encounter_uuid: str) -> dict:
    (resource,) = db.execute(
        "SELECT encounters_api.fhir_encounter(e, %s, e.document) FROM encounters.encounter AS e WHERE e.uuid = %s",
        [SYSTEM, encounter_uuid],
    ).fetchone()
    parsed = json.loads(resource)
    Encounter.model_validate(parsed)  # raises unless it is a valid R4(B) Encounter
    return parsed


def update(db: psycopg.Connection, encounter_uuid: str, **body: object) -> None:
    db.execute(
        "SELECT encounters_api.update_encounter(%s, %s::jsonb, 'nurse', true)", [encounter_uuid, json.dumps(body)]
    )


def extensions(resource: dict, name: str) -> list[dict]:
    return [extension for extension in resource.get("extension", []) if extension["url"] == EXTENSION + name]


def test_an_open_epr_encounter_maps_field_by_field(db):
    created = create(db, epr_encounter_id="EPR-7", encounter_type="INPATIENT")
    (modified,) = db.execute(
        "SELECT encounters_api.iso_utc(modified) FROM encounters.encounter WHERE uuid = %s", [created["uuid"]]
    ).fetchone()
    resource = fhir(db, created["uuid"])
    assert resource["resourceType"] == "Encounter"
    assert resource["id"] == created["uuid"]
    assert resource["meta"] == {"versionId": "1", "lastUpdated": modified}
    assert resource["identifier"] == [{"use": "official", "system": SYSTEM, "value": "EPR-7"}]
    assert resource["status"] == "in-progress"
    assert resource["class"] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "IMP",
        "display": "inpatient encounter",
    }
    assert resource["type"] == [{"text": "INPATIENT"}]
    assert resource["subject"] == {"reference": f"Patient/{created['patient_uuid']}"}
    assert resource["period"] == {"start": "2018-01-01T07:00:00.000Z"}
    assert resource["location"] == [
        {
            "location": {"reference": f"Location/{created['location_uuid']}"},
            "status": "active",
            "period": {"start": "2018-01-01T07:00:00.000Z"},
        }
    ]
    assert "partOf" not in resource
    assert resource["extension"] == [
        {"url": EXTENSION + "score-system", "valueString": "news2"},
        {"url": EXTENSION + "spo2-scale", "valuePositiveInt": 1},
        {"url": EXTENSION + "dh-product", "valueUuid": f"urn:uuid:{created['dh_product'][0]['uuid']}"},
        {"url": EXTENSION + "patient-record", "valueUuid": f"urn:uuid:{created['patient_record_uuid']}"},
    ]


@pytest.mark.parametrize(
    ("encounter_type", "code"),
    [("inpatient", "IMP"), ("OUTPATIENT", "AMB"), ("EMERGENCY", "EMER"), ("DAYCASE", "SS"), ("VIRTUAL", "VR")],
)
def test_class_is_the_act_code_of_the_encounter_type_in_any_case(db, encounter_type, code):
    created = create(db, encounter_type=encounter_type)
    resource = fhir(db, created["uuid"])
    assert resource["class"]["code"] == code
    assert resource["type"] == [{"text": encounter_type}]


@pytest.mark.parametrize("encounter_type", [None, "", "  ", "WARD ROUND"])
def test_without_an_act_code_class_is_unknown_and_type_keeps_any_text(db, encounter_type):
    created = create(db, encounter_type=encounter_type)
    resource = fhir(db, created["uuid"])
    assert resource["class"] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
        "code": "UNK",
        "display": "unknown",
    }
    assert resource.get("type") == ([{"text": encounter_type}] if encounter_type == "WARD ROUND" else None)


def test_moves_discharge_parent_and_score_changes(db):
    parent = create(db)
    first_ward = str(uuid.uuid4())
    child = create(db, location_uuid=first_ward, child_of_encounter_uuid=parent["uuid"])
    second_ward, third_ward = str(uuid.uuid4()), str(uuid.uuid4())
    update(db, child["uuid"], location_uuid=second_ward)
    update(db, child["uuid"], location_uuid=third_ward, spo2_scale=2)
    update(db, child["uuid"], discharged_at="2030-01-01T00:00:00.000Z")
    stored = json.loads(
        db.execute("SELECT document FROM encounters.encounter WHERE uuid = %s", [child["uuid"]]).fetchone()[0]
    )
    resource = fhir(db, child["uuid"])

    assert resource["status"] == "finished"
    assert resource["period"] == {"start": "2018-01-01T07:00:00.000Z", "end": "2030-01-01T00:00:00.000Z"}
    assert resource["partOf"] == {"reference": f"Encounter/{parent['uuid']}"}
    visits = stored["location_history"]
    assert resource["location"] == [
        {
            "location": {"reference": f"Location/{first_ward}"},
            "status": "completed",
            "period": {"start": visits[0]["arrived_at"], "end": visits[0]["departed_at"]},
        },
        {
            "location": {"reference": f"Location/{second_ward}"},
            "status": "completed",
            "period": {"start": visits[1]["arrived_at"], "end": visits[1]["departed_at"]},
        },
        {
            "location": {"reference": f"Location/{third_ward}"},
            "status": "completed",
            "period": {"start": visits[1]["departed_at"], "end": "2030-01-01T00:00:00.000Z"},
        },
    ]
    [change] = stored["score_system_history"]
    assert extensions(resource, "spo2-scale") == [{"url": EXTENSION + "spo2-scale", "valuePositiveInt": 2}]
    assert extensions(resource, "score-system-change") == [
        {
            "url": EXTENSION + "score-system-change",
            "extension": [  # score_system is null: the change did not name one, so it is left out
                {"url": "uuid", "valueUuid": f"urn:uuid:{change['uuid']}"},
                {"url": "changedTime", "valueDateTime": change["changed_time"]},
                {"url": "previousScoreSystem", "valueString": "news2"},
                {"url": "spo2Scale", "valuePositiveInt": 2},
                {"url": "previousSpo2Scale", "valuePositiveInt": 1},
                {"url": "createdBy", "valueString": "nurse"},
                {"url": "changedBy", "valueString": "nurse"},
            ],
        }
    ]


def test_a_deleted_encounter_is_entered_in_error_and_a_local_one_has_no_identifier(db):
    created = create(db)
    update(db, created["uuid"], deleted_at="2019-01-01T00:00:00.000Z")
    resource = fhir(db, created["uuid"])
    assert resource["status"] == "entered-in-error"
    assert "identifier" not in resource
    assert [visit["status"] for visit in resource["location"]] == ["completed"]


def test_a_history_entry_without_times_has_no_period(db):
    ward = str(uuid.uuid4())
    created = create(db, location_history=[{"location_uuid": ward}])
    first, current = fhir(db, created["uuid"])["location"]
    assert first == {"location": {"reference": f"Location/{ward}"}, "status": "completed"}
    assert current["period"] == {"start": "2018-01-01T07:00:00.000Z"}


def test_it_renders_without_a_stored_document_the_same(db):
    created = create(db, location_history=[{"location_uuid": str(uuid.uuid4())}])
    stored = fhir(db, created["uuid"])
    (unstored,) = db.execute(
        "SELECT encounters_api.fhir_encounter(e, %s) FROM encounters.encounter AS e WHERE e.uuid = %s",
        [SYSTEM, created["uuid"]],
    ).fetchone()
    assert json.loads(unstored) == stored


def test_each_version_renders_from_its_own_document_as_the_encounter_did_then(db):
    """encounters_api.fhir_encounter_versions, as an analyst selects it: an old version's fields
    (child, moves, spo2 scale and score change, type, EPR id, discharge) come from its document."""
    parent = create(db)
    child = create(db, child_of_encounter_uuid=parent["uuid"], epr_encounter_id="EPR-V", encounter_type="INPATIENT")
    then = [fhir(db, child["uuid"])]
    for body in (
        {"location_uuid": str(uuid.uuid4())},
        {"spo2_scale": 2, "encounter_type": "DAYCASE"},
        {"discharged_at": "2030-01-01T00:00:00.000Z"},
        {"deleted_at": "2030-01-02T00:00:00.000Z"},
    ):
        update(db, child["uuid"], **body)
        then.append(fhir(db, child["uuid"]))
    rows = db.execute(
        "SELECT version, deleted, resource FROM encounters_api.fhir_encounter_versions(%s, %s) ORDER BY version",
        [child["uuid"], SYSTEM],
    ).fetchall()
    assert [(version, deleted) for version, deleted, _ in rows] == [
        (1, False),
        (2, False),
        (3, False),
        (4, False),
        (5, True),
    ]
    assert [json.loads(resource) for *_, resource in rows] == then
    assert [resource["meta"]["versionId"] for resource in then] == ["1", "2", "3", "4", "5"]
    assert len({json.dumps(resource["location"]) for resource in then}) == 3  # moved, then discharged
    with pytest.raises(psycopg.Error, match="not found"):
        db.execute("SELECT * FROM encounters_api.fhir_encounter_versions(gen_random_uuid(), %s)", [SYSTEM])
