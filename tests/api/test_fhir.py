"""The FHIR R4 façade through HTTP: metadata, read, search, paging, errors and tokens. Every resource
and Bundle received is validated with PyPI's fhir.resources (its R4B models).

Data is arranged with SQL inserts (tests/queries/arrange.py), not through the write routes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.operationoutcome import OperationOutcome
from litestar.testing import TestClient

from encounters_service.app import create_app
from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from tests.conftest import template_clone
from tests.helpers import TEST_SETTINGS, auth
from tests.queries.arrange import (
    WARD_A,
    WARD_B,
    insert_encounter,
    insert_location_history,
    update_encounter,
)

BASE = "/fhir/R4"
FHIR_JSON = "application/fhir+json"
MODELS = {"Encounter": Encounter, "Bundle": Bundle, "CapabilityStatement": CapabilityStatement}


def fhir_get(client, path: str, params: Any = None, headers: dict | None = None, status: int = 200) -> dict:
    """GET a /fhir path; the answer must have `status` and be a valid FHIR resource of its kind."""
    response = client.get(BASE + path, params=params, headers=auth() if headers is None else headers)
    return checked(response, status)


def checked(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    resource = response.json()
    model = MODELS.get(resource["resourceType"], OperationOutcome) if status == 200 else OperationOutcome
    model.model_validate(resource)  # raises unless valid R4(B)
    return resource


def search(client, expect: int = 200, **params: Any) -> dict:
    return fhir_get(client, "/Encounter", params=params, status=expect)


def ids(bundle: dict) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def outcome(resource: dict) -> tuple[str, str]:
    [issue] = resource["issue"]
    return issue["code"], issue["diagnostics"]


@pytest.fixture(scope="module")
def unwritten(pg_server, template_conninfo) -> Iterator[TestClient]:
    """One app on one empty database for the tests that write nothing (a clone per test costs more)."""
    with template_clone(pg_server) as conninfo, TestClient(create_app(TEST_SETTINGS, conninfo)) as test_client:
        yield test_client


def next_link(bundle: dict) -> str | None:
    return next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)


# --- metadata and read ------------------------------------------------------------------------


def test_metadata_needs_no_token_and_lists_exactly_what_is_supported(unwritten):
    statement = fhir_get(unwritten, "/metadata", headers={})
    assert statement["fhirVersion"] == "4.0.1"
    [rest] = statement["rest"]
    [resource] = rest["resource"]
    assert resource["type"] == "Encounter"
    assert [i["code"] for i in resource["interaction"]] == ["read", "vread", "history-instance", "search-type"]
    assert (resource["versioning"], resource["readHistory"], resource["conditionalRead"]) == (
        "versioned",
        True,
        "not-match",
    )
    assert {p["name"] for p in resource["searchParam"]} == {
        "_id", "patient", "subject", "location", "status", "date", "_lastUpdated", "identifier", "part-of",
    }  # fmt: skip
    assert "strict" in rest["documentation"]


def test_read_answers_the_resource_sql_builds(client, db):
    encounter = insert_encounter(db, epr_encounter_id="EPR-9")
    resource = fhir_get(client, f"/Encounter/{encounter}")
    (expected,) = db.execute(
        "SELECT encounters_api.fhir_encounter(e, %s, e.document) FROM encounters.encounter AS e WHERE e.uuid = %s",
        [TEST_SETTINGS.fhir_epr_identifier_system, encounter],
    ).fetchone()
    assert resource == json.loads(expected)
    assert resource["identifier"][0] == {
        "use": "official",
        "system": TEST_SETTINGS.fhir_epr_identifier_system,
        "value": "EPR-9",
    }
    assert fhir_get(client, f"/Encounter/{str(encounter).upper()}")["id"] == str(encounter)


def test_read_deleted_is_410_unknown_and_malformed_404_as_operation_outcomes(client, db):
    deleted = insert_encounter(db, deleted_at="2020-01-02T00:00:00Z")
    assert outcome(fhir_get(client, f"/Encounter/{deleted}", status=410))[0] == "deleted"
    assert outcome(fhir_get(client, f"/Encounter/{uuid4()}", status=404))[0] == "not-found"
    assert outcome(fhir_get(client, "/Encounter/not-a-uuid", status=404))[0] == "not-found"
    assert outcome(fhir_get(client, "/Patient/x", status=404))[0] == "not-found"


def test_formats_json_only(client, db):
    encounter = insert_encounter(db)
    for params, headers in [
        ({"_format": "json"}, {}),
        ({"_format": "application/fhir+json"}, {}),
        ({}, {"Accept": "application/json"}),
        ({}, {"Accept": "application/fhir+json;q=0.9, text/html"}),
    ]:
        fhir_get(client, f"/Encounter/{encounter}", params=params, headers=auth() | headers)
    assert outcome(fhir_get(client, f"/Encounter/{encounter}", params={"_format": "xml"}, status=406)) == (
        "not-supported",
        "_format 'xml' is not supported: this server answers JSON only (_format=json)",
    )
    response = client.get(f"{BASE}/metadata", headers={"Accept": "application/fhir+xml"})
    assert outcome(checked(response, 406))[0] == "not-supported"


# --- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope",
    [READ_SCOPE, "system/Encounter.read", "user/Encounter.read", "system/*.read", "user/Encounter.rs", "user/*.cruds"],
)
def test_read_scope_and_smart_scopes_that_grant_encounter_read_and_search(client, db, scope):
    encounter = insert_encounter(db)
    headers = auth(scope)
    fhir_get(client, f"/Encounter/{encounter}", headers=headers)
    assert ids(fhir_get(client, "/Encounter", params={"_id": str(encounter)}, headers=headers)) == [str(encounter)]


@pytest.mark.parametrize(
    ("scope", "read", "search"),
    [
        (WRITE_SCOPE, 403, 403),
        ("patient/Encounter.read", 403, 403),  # needs a patient in context, which this server has not
        ("user/Observation.read", 403, 403),
        ("user/Encounter.r", 200, 403),
        ("user/Encounter.s", 403, 200),
        ("user/Encounter.rs?status=finished", 403, 403),  # narrowed scopes grant nothing here
        ("user/Encounter.sr", 403, 403),  # v2 letters come in the order cruds
    ],
)
def test_other_scopes_are_refused_as_security_outcomes(client, db, scope, read, search):
    encounter = insert_encounter(db)
    headers = auth(scope)
    answered = fhir_get(client, f"/Encounter/{encounter}", headers=headers, status=read)
    if read == 403:
        assert outcome(answered)[0] == "security"
    answered = fhir_get(client, "/Encounter", headers=headers, status=search)
    if search == 403:
        assert outcome(answered) == (
            "security",
            "missing scope 'read:send_encounter' or a SMART scope that grants searching Encounters"
            " (system/Encounter.read, user/Encounter.s, system/*.read, …)",
        )


def test_without_a_token_login_and_dhos_routes_keep_their_message(unwritten):
    response = unwritten.get(f"{BASE}/Encounter")
    assert response.headers["www-authenticate"] == "Bearer"
    assert outcome(checked(response, 401)) == ("login", "missing Authorization header")
    assert unwritten.get("/dhos/v2/encounter/latest").json() == {"message": "missing Authorization header"}


# --- search -----------------------------------------------------------------------------------


@pytest.fixture
def ward(db) -> dict[str, UUID]:
    """At WARD_A: an open EPR stay with a parent, a discharged one, a deleted one; at WARD_B the
    parent (discharged) and an open stay that was at WARD_A before (location history)."""
    patient = uuid4()
    parent = insert_encounter(
        db,
        location_uuid=WARD_B,
        admitted_at="2020-01-01T00:00:00Z",
        discharged_at="2020-01-10T00:00:00Z",
        modified="2020-06-01T00:00:00Z",
    )
    open_stay = insert_encounter(
        db,
        patient_uuid=patient,
        epr_encounter_id="EPR-1",
        admitted_at="2020-03-01T10:00:00Z",
        child_of_encounter_uuid=parent,
        modified="2021-01-01T00:00:00Z",
    )
    discharged = insert_encounter(
        db,
        patient_uuid=patient,
        epr_encounter_id="EPR-0",
        admitted_at="2020-02-01T10:00:00Z",
        discharged_at="2020-02-03T10:00:00Z",
        modified="2021-02-01T00:00:00Z",
    )
    deleted = insert_encounter(db, patient_uuid=patient, deleted_at="2020-03-02T00:00:00Z")
    moved = insert_encounter(db, location_uuid=WARD_B, admitted_at="2020-03-05T00:00:00Z")
    insert_location_history(
        db, moved, location_uuid=WARD_A, arrived_at="2020-03-05T00:00:00Z", departed_at="2020-03-06T00:00:00Z"
    )
    return {
        "patient": patient,
        "parent": parent,
        "open": open_stay,
        "discharged": discharged,
        "deleted": deleted,
        "moved": moved,
    }


def found(client, **params: Any) -> set[UUID]:
    return {UUID(i) for i in ids(search(client, **params))}


def test_search_by_each_parameter(client, ward):
    w = ward
    assert found(client, patient=f"Patient/{w['patient']}") == {w["open"], w["discharged"]}  # not the deleted one
    assert found(client, subject=str(w["patient"])) == {w["open"], w["discharged"]}
    assert found(client, location=f"Location/{WARD_A}") == {w["open"], w["discharged"], w["moved"]}
    assert found(client, location=str(WARD_B)) == {w["parent"], w["moved"]}
    assert found(client, status="in-progress", location=str(WARD_A)) == {w["open"], w["moved"]}
    assert found(client, status="finished") == {w["discharged"], w["parent"]}
    assert found(client, status="entered-in-error,planned") == set()  # deleted encounters are never found
    assert found(client, _id=f"{w['open']},{w['deleted']}") == {w["open"]}
    assert found(client, identifier="EPR-1") == {w["open"]}
    assert found(client, identifier=f"{TEST_SETTINGS.fhir_epr_identifier_system}|EPR-0,EPR-1") == {
        w["open"],
        w["discharged"],
    }
    assert found(client, identifier=f"{TEST_SETTINGS.fhir_epr_identifier_system}|") == {w["open"], w["discharged"]}
    assert found(client, identifier="urn:other|EPR-1") == set()
    assert found(client, identifier="|EPR-1") == set()
    assert found(client, **{"part-of": f"Encounter/{w['parent']}"}) == {w["open"]}


def test_repeated_parameters_and_commas_or(client, ward):
    w = ward
    both = [("location", str(WARD_A)), ("location", str(WARD_B))]  # AND: at both, now or before
    response = client.get(f"{BASE}/Encounter", params=both, headers=auth())
    assert {UUID(i) for i in ids(checked(response))} == {w["moved"]}
    either = {UUID(i) for i in ids(search(client, location=f"{WARD_A},{WARD_B}"))}
    assert either == {w["open"], w["discharged"], w["moved"], w["parent"]}
    contradicting = [("status", "in-progress"), ("status", "finished")]
    assert ids(checked(client.get(f"{BASE}/Encounter", params=contradicting, headers=auth()))) == []


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("2020-02", {"discharged"}),  # the period lies within February
        ("eq2020-02-01", set()),  # … not within one day
        ("ge2020-03-01", {"open", "moved"}),  # open periods end at infinity
        ("gt2020-03-05", {"open", "moved"}),
        ("lt2020-01-02", {"parent"}),
        ("le2020-02-01T10:00:00Z", {"parent"}),  # discharged starts then: not before, nor within the second
        ("le2020-02", {"parent", "discharged"}),
        ("sa2020-03-01", {"moved"}),
        ("eb2020-03-01", {"parent", "discharged"}),
        ("ne2020-02", {"parent", "open", "moved"}),
        ("ap2020-01-05", {"parent", "open", "discharged", "moved"}),  # ± a tenth of the years since
        (f"ap{date.today()}", {"open", "moved"}),  # ± a tenth of a day or so
        ("ge2020-03-01T11:00:00+01:00", {"open", "moved"}),
        ("sa2020-03-01T11:00:00+01:00", {"moved"}),  # open began at 10:00 UTC, as that value does
        ("sa2020-03-01T09:59:59.999Z", {"open", "moved"}),
    ],
)
def test_search_by_date_prefixes_over_the_period(client, ward, date, expected):
    assert found(client, date=date) == {ward[name] for name in expected}


def test_search_by_two_dates_and_last_updated(client, ward):
    both = [("date", "ge2020-02-01"), ("date", "lt2020-03-01"), ("_lastUpdated", "ge2021-01-15")]
    response = client.get(f"{BASE}/Encounter", params=both, headers=auth())
    assert {UUID(i) for i in ids(checked(response))} == {ward["discharged"]}


def test_total_summary_sort_and_post_search(client, ward):
    w = ward
    counted = search(client, _summary="count")
    assert (counted["total"], "entry" in counted) == (4, False)
    assert "total" not in search(client)
    assert search(client, _total="accurate", _count="1")["total"] == 4
    by_date = [w["parent"], w["discharged"], w["open"], w["moved"]]
    assert [UUID(i) for i in ids(search(client, _sort="date"))] == by_date
    assert [UUID(i) for i in ids(search(client, _sort="-date"))] == by_date[::-1]
    by_change = [w["moved"], w["discharged"], w["open"], w["parent"]]  # moved: modified at its insert
    assert [UUID(i) for i in ids(search(client, _sort="-_lastUpdated"))] == by_change
    response = client.post(
        f"{BASE}/Encounter/_search",
        params={"_sort": "date"},
        data={"location": str(WARD_A), "status": "in-progress"},
        headers=auth(),
    )
    bundle = checked(response)
    assert [UUID(i) for i in ids(bundle)] == [w["open"], w["moved"]]
    assert bundle["link"][0]["url"].startswith("http://testserver.local/fhir/R4/Encounter?_sort=date&location=")


@pytest.mark.parametrize("sort", ["", "date", "-date", "_lastUpdated", "-_lastUpdated"])
def test_paging_follows_next_links_through_every_match_once(client, db, sort):
    for k in range(7):
        insert_encounter(db, admitted_at=f"2020-01-0{1 + k % 3}T00:00:00Z")  # ties in date, ended by id
    expected = ids(search(client, _sort=sort or None, _count="100"))
    assert len(expected) == 7
    seen, url, pages = [], f"{BASE}/Encounter?_count=3" + (f"&_sort={sort}" if sort else ""), 0
    while url:
        bundle = checked(client.get(url, headers=auth()))
        assert len(bundle["entry"]) <= 3
        seen += ids(bundle)
        url, pages = next_link(bundle), pages + 1
    assert (seen, pages) == (expected, 3)


def test_paging_while_writes_happen_never_repeats_or_skips(client, db):
    first = [insert_encounter(db) for _ in range(6)]
    bundle = search(client, _count="3")
    seen = ids(bundle)
    for encounter in first:  # every encounter changes, and new ones arrive, between the pages
        update_encounter(db, encounter, modified="2030-01-01T00:00:00Z", location_uuid=WARD_B)
    later = [insert_encounter(db) for _ in range(3)]
    url = next_link(bundle)
    while url:
        bundle = checked(client.get(url, headers=auth()))
        seen += ids(bundle)
        url = next_link(bundle)
    assert len(seen) == len(set(seen))
    assert {UUID(i) for i in seen} >= set(first)
    assert {UUID(i) for i in seen} <= set(first) | set(later)


def test_count_is_capped_and_shown_in_the_links(client, db):
    insert_encounter(db)
    bundle = search(client, _count="5000", status="in-progress")
    [self_link] = bundle["link"]
    assert parse_qs(urlsplit(self_link["url"]).query) == {"status": ["in-progress"], "_count": ["1000"]}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"name": "x"}, "unknown parameter(s): name (this server handles search parameters strictly;"),
        ({"status:not": "finished"}, "search modifiers are not supported: status:not"),
        ({"status": "open"}, "status must be among"),
        ({"patient": "Group/2126393f-c86b-4bf2-9f68-42bb03a7b68a"}, "patient must be Patient/<uuid> or a uuid"),
        ({"location": "ward-1"}, "location must be Location/<uuid> or a uuid"),
        ({"date": "2020-13"}, "date: '2020-13' is not a date"),
        ({"date": "ge2020-01-01,le2020-02-01"}, "date must be [prefix]YYYY"),
        ({"_lastUpdated": "xx2020"}, "_lastUpdated must be [prefix]YYYY"),
        ({"_count": "-1"}, "_count must be a whole number from 0 to 1000"),
        ({"_sort": "status"}, "_sort must be one of date, -date, _lastUpdated, -_lastUpdated"),
        ({"_summary": "true"}, "_summary must be count"),
        ({"_total": "all"}, "_total must be none, estimate or accurate"),
        ({"_cursor": "x"}, "_cursor is not a cursor of this search"),
        ({"_sort": "date", "_cursor": "i2126393f-c86b-4bf2-9f68-42bb03a7b68a"}, "_cursor is not a cursor"),
    ],
)
def test_bad_parameters_are_400_invalid(unwritten, params, message):
    code, diagnostics = outcome(search(unwritten, expect=400, **params))
    assert code == "invalid"
    assert diagnostics.startswith(message), diagnostics


@pytest.mark.parametrize(
    ("name", "value"),
    [("_count", "1"), ("_sort", "date"), ("_summary", "count"), ("_total", "accurate"), ("_format", "json")],
)
def test_a_result_parameter_given_twice_is_400(unwritten, name, value):
    response = unwritten.get(f"{BASE}/Encounter", params=[(name, value), (name, value)], headers=auth())
    assert outcome(checked(response, 400)) == ("invalid", f"parameter(s) given more than once: {name}")


def test_post_search_takes_a_form_only_of_at_most_1_mib(unwritten):
    response = unwritten.post(f"{BASE}/Encounter/_search", json={"status": "finished"}, headers=auth())
    assert outcome(checked(response, 415))[0] == "not-supported"
    response = unwritten.post(f"{BASE}/Encounter/_search", content=b"text/plain", headers=auth())
    assert outcome(checked(response, 415))[0] == "not-supported"
    large = {"identifier": "x" * 1024 * 1024}
    assert outcome(checked(unwritten.post(f"{BASE}/Encounter/_search", data=large, headers=auth()), 413)) == (
        "too-costly",
        "Request Entity Too Large",
    )
