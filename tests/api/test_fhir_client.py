"""A real FHIR client library from PyPI (fhirpy's sync client) against a served instance: the
façade works for a FHIR integrator as it stands, paging included. Each Encounter it receives is
validated with fhir.resources (R4B); tests/api/test_fhir.py validates the Bundles."""

from __future__ import annotations

from uuid import uuid4

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from encounters_service.auth import READ_SCOPE
from tests.helpers import token
from tests.queries.arrange import WARD_A, WARD_B, insert_encounter, insert_location_history, update_encounter


@pytest.fixture
def fhir_client(live_server) -> SyncFHIRClient:
    return SyncFHIRClient(f"{live_server}/fhir/R4", authorization=f"Bearer {token(READ_SCOPE)}")


def valid(resources) -> list[str]:
    """The ids of fhirpy's resources, each validated as an R4(B) Encounter."""
    for resource in resources:
        Encounter.model_validate(resource.serialize())
    return [resource.id for resource in resources]


def test_search_by_location_pages_through_every_match(fhir_client, db):
    in_ward = [insert_encounter(db, location_uuid=WARD_A) for _ in range(9)]
    moved_out = insert_encounter(db, location_uuid=WARD_B)
    insert_location_history(db, moved_out, location_uuid=WARD_A)
    insert_encounter(db, location_uuid=WARD_A, discharged_at="2020-01-02T00:00:00Z")
    insert_encounter(db, location_uuid=WARD_B)

    search = fhir_client.resources("Encounter").search(location=f"Location/{WARD_A}", status="in-progress")
    assert len(valid(search.limit(4).fetch())) == 4  # one page
    every = valid(search.limit(4).fetch_all())  # follows the next links: three pages
    assert sorted(every) == sorted(str(e) for e in [*in_ward, moved_out])
    assert every == sorted(every)  # by id, the default order


def test_search_by_patient_status_and_date(fhir_client, db):
    patient = uuid4()
    older = insert_encounter(
        db, patient_uuid=patient, admitted_at="2020-01-01T00:00:00Z", discharged_at="2020-01-05T00:00:00Z"
    )
    current = insert_encounter(db, patient_uuid=patient, admitted_at="2020-06-01T00:00:00Z")
    insert_encounter(db, admitted_at="2020-06-01T00:00:00Z")

    encounters = fhir_client.resources("Encounter")
    assert valid(encounters.search(patient=f"Patient/{patient}").sort("date").fetch_all()) == [
        str(older),
        str(current),
    ]
    assert valid(encounters.search(subject=str(patient), status="finished").fetch_all()) == [str(older)]
    in_june = encounters.search(patient=str(patient), date__ge="2020-06-01", status="in-progress")
    assert valid(in_june.fetch_all()) == [str(current)]
    assert valid(encounters.search(patient=str(patient), date__lt="2020-01-02").fetch_all()) == [str(older)]
    assert encounters.search(patient=str(patient), _summary="count").fetch_raw().total == 2
    assert fhir_client.reference("Encounter", str(current)).to_resource().status == "in-progress"


def test_versions_history_and_refresh(fhir_client, db):
    encounter = insert_encounter(db, location_uuid=WARD_A)
    update_encounter(db, encounter, location_uuid=WARD_B)
    resource = fhir_client.reference("Encounter", str(encounter)).to_resource()
    assert valid([resource]) and resource.meta.versionId == "2"
    resource.refresh()  # If-None-Match: 2 (fhirpy sends the bare versionId): 304, kept as it is
    assert resource.meta.versionId == "2"
    update_encounter(db, encounter, discharged_at="2030-01-01T00:00:00Z")
    assert resource.refresh().meta.versionId == "3" and resource.status == "finished"

    first = fhir_client.execute(f"Encounter/{encounter}/_history/1", method="get")
    assert Encounter.model_validate(first).location[0].location.reference == f"Location/{WARD_A}"
    history = fhir_client.execute(f"Encounter/{encounter}/_history", method="get")
    Bundle.model_validate(history)
    assert [entry.resource.meta.versionId for entry in history.entry] == ["3", "2", "1"]
    with pytest.raises(ResourceNotFound):
        fhir_client.execute(f"Encounter/{encounter}/_history/4", method="get")
