"""The FHIR R4 façade's versions: meta.versionId and the weak ETag of a read (If-None-Match: 304),
GET /fhir/R4/Encounter/{id}/_history (a Bundle of type history, newest first) and
…/_history/{vid} (vread). Every resource and Bundle received is validated with PyPI's
fhir.resources (its R4B models).

The encounters are written through the /dhos write routes, so that each change makes a version as
it does for callers (trigger encounter_keep_version)."""

from __future__ import annotations

from uuid import uuid4

from encounters_service.app import create_app
from tests.api.test_encounter_writes import create, encounter_url
from tests.api.test_fhir import BASE, checked, fhir_get, outcome
from tests.helpers import TEST_SETTINGS, auth


def patch(client, encounter: str, **body: object) -> None:
    response = client.patch(encounter_url(encounter), json=body, headers=auth())
    assert response.status_code == 200, response.text


def read(client, encounter: str, headers: dict | None = None):
    return client.get(f"{BASE}/Encounter/{encounter}", headers=auth() | (headers or {}))


def test_version_id_and_etag_follow_each_write(client):
    encounter = create(client)["uuid"]
    first = read(client, encounter)
    assert checked(first)["meta"]["versionId"] == "1"
    assert first.headers["etag"] == 'W/"1"'
    patch(client, encounter, location_uuid=str(uuid4()))
    patch(client, encounter, encounter_type="DAYCASE")
    made = fhir_get(client, f"/Encounter/{encounter}")
    assert made == fhir_get(client, f"/Encounter/{encounter}/_history/3")
    patch(client, encounter, encounter_type="DAYCASE")  # the same value: modified moves, no version is made
    third = read(client, encounter)
    assert checked(third)["meta"]["versionId"] == "3"
    assert third.headers["etag"] == 'W/"3"'
    # Weak: the same version, its lastUpdated now the unchanging write's (the vread keeps the version's).
    assert checked(third)["meta"]["lastUpdated"] > made["meta"]["lastUpdated"]
    assert {**checked(third), "meta": made["meta"]} == made


def test_if_none_match_naming_the_version_is_304(client):
    """A bare versionId (3) is taken as W/"3": fhirpy's refresh() sends it so."""
    encounter = create(client)["uuid"]
    patch(client, encounter, location_uuid=str(uuid4()))
    patch(client, encounter, encounter_type="DAYCASE")
    for header in ('W/"3"', '"3"', '"1", W/"3"', "*", "3"):
        answer = read(client, encounter, {"If-None-Match": header})
        assert (answer.status_code, answer.content, answer.headers["etag"]) == (304, b"", 'W/"3"'), header


def test_if_none_match_naming_another_version_answers_the_resource(client):
    encounter = create(client)["uuid"]
    patch(client, encounter, location_uuid=str(uuid4()))
    for header in ('W/"1"', '"1", "3"', "1"):
        answer = read(client, encounter, {"If-None-Match": header})
        assert checked(answer)["meta"]["versionId"] == "2"
    assert outcome(checked(read(client, encounter, {"If-None-Match": "2 3"}), 400))[0] == "invalid"


def test_history_after_a_create_two_patches_and_a_delete(client):
    encounter = create(client, encounter_type="INPATIENT", epr_encounter_id="EPR-H")["uuid"]
    answered = [fhir_get(client, f"/Encounter/{encounter}")]  # what each version's read answered
    patch(client, encounter, location_uuid=str(uuid4()))
    answered.append(fhir_get(client, f"/Encounter/{encounter}"))
    patch(client, encounter, encounter_type="DAYCASE", discharged_at="2018-01-03T00:00:00Z")
    answered.append(fhir_get(client, f"/Encounter/{encounter}"))
    patch(client, encounter, deleted_at="2018-01-04T00:00:00Z")
    assert outcome(fhir_get(client, f"/Encounter/{encounter}", status=410))[0] == "deleted"

    bundle = fhir_get(client, f"/Encounter/{encounter}/_history")
    assert (bundle["type"], bundle["total"]) == ("history", 4)
    assert bundle["link"] == [
        {"relation": "self", "url": f"http://testserver.local{BASE}/Encounter/{encounter}/_history"}
    ]
    entries = bundle["entry"]
    assert [entry["response"]["etag"] for entry in entries] == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']  # newest first
    assert {entry["fullUrl"] for entry in entries} == {f"http://testserver.local{BASE}/Encounter/{encounter}"}
    assert [(e["request"]["method"], e["request"]["url"], e["response"]["status"]) for e in entries] == [
        ("DELETE", f"Encounter/{encounter}", "204 No Content"),
        ("PUT", f"Encounter/{encounter}", "200 OK"),
        ("PUT", f"Encounter/{encounter}", "200 OK"),
        ("POST", "Encounter", "201 Created"),
    ]
    assert "resource" not in entries[0]  # a deletion, as FHIR writes one
    assert [entry["resource"] for entry in entries[1:]] == answered[::-1]
    assert [e["response"]["lastModified"] for e in entries[1:]] == [r["meta"]["lastUpdated"] for r in answered[::-1]]
    # The versions differ where their row fields did (each is rendered from its own document).
    assert [r["status"] for r in answered] == ["in-progress", "in-progress", "finished"]
    assert [r["type"] for r in answered] == [[{"text": "INPATIENT"}]] * 2 + [[{"text": "DAYCASE"}]]
    assert answered[0]["location"] != answered[1]["location"]

    for version, resource in enumerate(answered, start=1):
        one = client.get(f"{BASE}/Encounter/{encounter}/_history/{version}", headers=auth())
        assert checked(one) == resource
        assert one.headers["etag"] == f'W/"{version}"'
    assert outcome(fhir_get(client, f"/Encounter/{encounter}/_history/4", status=410))[0] == "deleted"


def test_the_history_of_an_encounter_created_deleted_is_one_deletion(client):
    encounter = create(client, deleted_at="2018-01-04T00:00:00Z")["uuid"]
    [entry] = fhir_get(client, f"/Encounter/{encounter}/_history")["entry"]
    assert (entry["request"], "resource" in entry) == ({"method": "DELETE", "url": f"Encounter/{encounter}"}, False)


def test_an_unknown_version_is_404(client):
    encounter = create(client)["uuid"]
    for vid in ("0", "2", "99999999999", "9" * 18):
        found = outcome(fhir_get(client, f"/Encounter/{encounter}/_history/{vid}", status=404))
        assert found == ("not-found", f"Encounter/{encounter} has no version {vid}")


def test_a_vid_not_spelled_as_a_version_is_404(client):
    """As every int path parameter (api/common.py): the /dhos history spells its versions so too."""
    encounter = create(client)["uuid"]
    for vid in ("01", "+1", "-1", "1.0", "1_0", "x", "%31", "1" * 19):
        assert outcome(fhir_get(client, f"/Encounter/{encounter}/_history/{vid}", status=404))[0] == "not-found"
        assert client.get(f"{encounter_url(encounter)}/history/{vid}", headers=auth()).status_code == 404, vid


def test_openapi_documents_the_versions():
    paths = create_app(TEST_SETTINGS, "postgresql://unused").openapi_schema.to_schema()["paths"]
    read = paths[f"{BASE}/Encounter/{{encounter_id}}"]["get"]
    assert set(read["responses"]["200"]["headers"]) == set(read["responses"]["304"]["headers"]) == {"ETag"}
    assert "If-None-Match" in {parameter["name"] for parameter in read["parameters"]}
    vread = paths[f"{BASE}/Encounter/{{encounter_id}}/_history/{{version}}"]["get"]
    assert {"200", "404", "410"} <= set(vread["responses"]) and "ETag" in vread["responses"]["200"]["headers"]
    history = paths[f"{BASE}/Encounter/{{encounter_id}}/_history"]["get"]
    assert history["responses"]["200"]["content"]["application/fhir+json"]["schema"]["properties"] == {
        "resourceType": {"const": "Bundle"}
    }


def test_the_history_of_an_unknown_encounter_is_404(client):
    missing = uuid4()
    assert outcome(fhir_get(client, f"/Encounter/{missing}/_history", status=404))[0] == "not-found"
    assert outcome(fhir_get(client, f"/Encounter/{missing}/_history/1", status=404))[0] == "not-found"


def test_history_routes_take_format_alone_and_the_read_scope(client):
    encounter = create(client)["uuid"]
    for path in (f"/Encounter/{encounter}/_history", f"/Encounter/{encounter}/_history/1"):
        assert fhir_get(client, path, params={"_format": "json"})["resourceType"] in ("Bundle", "Encounter")
        for unsupported in ({"_since": "2018-01-01"}, {"_count": "1"}):
            assert outcome(fhir_get(client, path, params=unsupported, status=400))[0] == "invalid"
        assert outcome(fhir_get(client, path, headers={}, status=401))[0] == "login"
        assert outcome(fhir_get(client, path, headers=auth("write:send_encounter"), status=403))[0] == "security"


def test_an_encounter_changed_last_before_the_history_has_its_current_version(client, db):
    encounter = create(client)["uuid"]
    db.execute("DELETE FROM encounters.encounter_history")  # as if written before migration 0006
    db.execute("UPDATE encounters.encounter SET version = NULL")  # and before migration 0005
    current = fhir_get(client, f"/Encounter/{encounter}")
    assert current["meta"]["versionId"] == "1"
    [entry] = fhir_get(client, f"/Encounter/{encounter}/_history")["entry"]
    assert entry["resource"] == current
