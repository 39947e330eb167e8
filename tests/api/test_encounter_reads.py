"""The read routes through HTTP: flags, ordering, and the scenarios of ward life.

Data is arranged with SQL inserts (tests/queries/arrange.py), not through the write routes.
"""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from tests.helpers import COMPACT_KEYS, EXPANDED_KEYS, FULL_KEYS, auth
from tests.queries.arrange import (
    WARD_A,
    WARD_B,
    insert_encounter,
    insert_location_history,
    insert_score_system_history,
    update_encounter,
)


def get(client, path: str, **params) -> object:
    response = client.get(path, params=params, headers=auth())
    assert response.status_code == 200, response.text
    return response.json()


def post(client, path: str, ids: list, **params) -> object:
    response = client.post(path, params=params, json=[str(i) for i in ids], headers=auth())
    assert response.status_code == 200, response.text
    return response.json()


def uuids(encounters: list[dict]) -> list[UUID]:
    return [UUID(e["uuid"]) for e in encounters]


def latest(client, patient: UUID, **params) -> UUID | None:
    response = client.get("/dhos/v2/encounter/latest", params={"patient_id": str(patient), **params}, headers=auth())
    assert response.status_code in (200, 404), response.text
    return UUID(response.json()["uuid"]) if response.status_code == 200 else None


def census(client, wards: list[UUID], **params) -> dict:
    """What the three census routes say about these wards, in one comparable value."""
    return {
        "at_locations": uuids(post(client, "/dhos/v1/encounter/locations", wards, **params)),
        "patient_count": post(client, "/dhos/v1/encounter/locations/patient_count", wards, **params),
    }


# --- children ---------------------------------------------------------------------------------


def test_children_are_all_descendants_and_deleted_subtrees_only_on_request(client, db):
    parent = insert_encounter(db)
    child = insert_encounter(db, child_of_encounter_uuid=parent, epr_encounter_id="c1")
    grandchild = insert_encounter(db, child_of_encounter_uuid=child, epr_encounter_id="g1")
    deleted = insert_encounter(db, child_of_encounter_uuid=parent, deleted_at="2020-01-02T00:00:00Z")
    below_deleted = insert_encounter(db, child_of_encounter_uuid=deleted, epr_encounter_id="g2")

    path = f"/dhos/v1/encounter/{parent}/children"
    assert set(map(UUID, get(client, path))) == {child, grandchild}
    assert set(map(UUID, get(client, path, show_deleted="true"))) == {child, grandchild, deleted, below_deleted}
    assert set(map(UUID, get(client, path, show_deleted="false"))) == {child, grandchild}
    assert get(client, f"/dhos/v1/encounter/{grandchild}/children") == []


def test_children_of_an_unknown_encounter_is_an_empty_list_and_a_bad_id_is_404(client):
    assert get(client, f"/dhos/v1/encounter/{uuid4()}/children") == []
    assert client.get("/dhos/v1/encounter/not-a-uuid/children", headers=auth()).status_code == 404


# --- GET /dhos/v2/encounter -------------------------------------------------------------------


def test_list_puts_open_first_then_newest_admission_then_newest_creation(client, db):
    patient = uuid4()

    def encounter(epr: str, admitted: str, **fields) -> UUID:
        return insert_encounter(db, patient_uuid=patient, epr_encounter_id=epr, admitted_at=admitted, **fields)

    discharged_march = encounter("a", "2020-03-01T00:00Z", discharged_at="2020-03-05T00:00Z")
    open_january = encounter("b", "2020-01-01T00:00Z")
    open_february = encounter("c", "2020-02-01T00:00Z")
    discharged_march_created_later = encounter("d", "2020-03-01T00:00Z", discharged_at="2020-03-02T00:00Z")
    deleted_april = encounter("e", "2020-04-01T00:00Z", deleted_at="2020-04-02T00:00Z")

    expected = [open_february, open_january, discharged_march_created_later, discharged_march]
    assert uuids(get(client, "/dhos/v2/encounter", patient_id=str(patient))) == expected
    with_deleted = uuids(get(client, "/dhos/v2/encounter", patient_id=str(patient), show_deleted="true"))
    assert with_deleted == [
        open_february,
        open_january,
        deleted_april,
        discharged_march_created_later,
        discharged_march,
    ]
    assert latest(client, patient) == expected[0]


@pytest.mark.parametrize(
    ("flags", "keys"),
    [
        ({}, FULL_KEYS | {"child_encounter_uuids"}),
        ({"expanded": "true"}, FULL_KEYS | EXPANDED_KEYS | {"child_encounter_uuids"}),
        ({"compact": "true"}, COMPACT_KEYS),
        ({"compact": "true", "expanded": "true"}, COMPACT_KEYS | EXPANDED_KEYS),
        ({"compact": "false", "expanded": "false"}, FULL_KEYS | {"child_encounter_uuids"}),
    ],
)
def test_list_forms_carry_exactly_their_keys(client, db, flags, keys):
    patient = str(uuid4())
    insert_encounter(db, patient_uuid=patient)
    (listed,) = get(client, "/dhos/v2/encounter", patient_id=patient, **flags)
    assert set(listed) == keys
    (as_of,) = get(client, "/dhos/v2/encounter", patient_id=patient, open_as_of="2020-06-01T00:00:00Z", **flags)
    assert set(as_of) == keys


def test_full_form_renders_histories_children_and_datetimes(client, db):
    patient = uuid4()
    parent = insert_encounter(
        db, patient_uuid=patient, admitted_at="2020-01-01T08:00:00+01:00", epr_encounter_id="EPR-1", spo2_scale=2
    )
    child = insert_encounter(db, patient_uuid=patient, child_of_encounter_uuid=parent, deleted_at="2020-01-03T00:00Z")
    insert_location_history(db, parent, arrived_at="2020-01-02T00:00Z", departed_at="2020-01-02T01:00Z")
    insert_location_history(db, parent, location_uuid=WARD_A, arrived_at="2020-01-01T07:00Z")
    history = insert_score_system_history(db, parent, changed_time="2020-01-01T10:00:00.123456Z")

    (encounter,) = get(client, "/dhos/v2/encounter", patient_id=str(patient))
    assert encounter["uuid"] == str(parent)
    assert encounter["admitted_at"] == "2020-01-01T07:00:00.000Z"
    assert encounter["discharged_at"] is None
    assert encounter["epr_encounter_id"] == "EPR-1"
    assert encounter["spo2_scale"] == 2
    assert encounter["child_encounter_uuids"] == [str(child)]  # deleted descendants included
    assert [h["location_uuid"] for h in encounter["location_history"]] == [str(WARD_A), str(WARD_B)]
    assert encounter["location_history"][0]["arrived_at"] == "2020-01-01T07:00:00.000Z"
    assert encounter["score_system_history"] == [
        {
            "uuid": str(history),
            "changed_time": "2020-01-01T10:00:00.123Z",
            "score_system": "news2",
            "previous_score_system": "news2",
            "spo2_scale": 2,
            "previous_spo2_scale": 1,
            "created_by": "arranger",
            "changed_by": "arranger",
        }
    ]
    (shown_child,) = [
        e
        for e in get(client, "/dhos/v2/encounter", patient_id=str(patient), show_children="true", show_deleted="true")
        if e["uuid"] == str(child)
    ]
    assert shown_child["child_of_encounter_uuid"] == str(parent)
    assert shown_child["child_encounter_uuids"] == []


def test_list_shows_children_and_deleted_only_on_request(client, db):
    patient = uuid4()
    parent = insert_encounter(db, patient_uuid=patient, epr_encounter_id="p")
    child = insert_encounter(db, patient_uuid=patient, child_of_encounter_uuid=parent, epr_encounter_id="c")
    deleted = insert_encounter(db, patient_uuid=patient, deleted_at="2020-01-02T00:00Z")
    deleted_child = insert_encounter(
        db, patient_uuid=patient, child_of_encounter_uuid=parent, deleted_at="2020-01-02T00:00Z"
    )

    def listed(**flags) -> set[UUID]:
        return set(uuids(get(client, "/dhos/v2/encounter", patient_id=str(patient), **flags)))

    assert listed() == {parent}
    assert listed(show_children="true") == {parent, child}
    assert listed(show_deleted="true") == {parent, deleted}
    assert listed(show_children="true", show_deleted="true") == {parent, child, deleted, deleted_child}


def test_list_by_epr_encounter_id_and_by_both(client, db):
    patient = uuid4()
    first = insert_encounter(db, patient_uuid=patient, epr_encounter_id="EPR-7")
    other_patients = insert_encounter(db, epr_encounter_id="EPR-8")

    assert uuids(get(client, "/dhos/v2/encounter", epr_encounter_id="EPR-7")) == [first]
    assert uuids(get(client, "/dhos/v2/encounter", epr_encounter_id="EPR-8", patient_id=str(patient))) == []
    assert uuids(get(client, "/dhos/v2/encounter", epr_encounter_id="EPR-8")) == [other_patients]
    assert uuids(get(client, "/dhos/v2/encounter", epr_encounter_id="EPR-7", patient_id=str(patient))) == [first]
    assert uuids(get(client, "/dhos/v2/encounter", epr_encounter_id="", patient_id=str(patient))) == [first]


def test_list_open_as_of_gives_only_the_latest_encounter_open_then(client, db):
    patient = uuid4()
    earlier, later = (
        insert_encounter(db, patient_uuid=patient, epr_encounter_id=epr, admitted_at=admitted, discharged_at=discharged)
        for epr, admitted, discharged in (
            ("1", "2020-01-01T00:00Z", "2020-03-01T00:00Z"),
            ("2", "2020-02-01T00:00Z", "2020-02-10T00:00Z"),
        )
    )

    def as_of(when: str, **params) -> list[UUID]:
        return uuids(get(client, "/dhos/v2/encounter", patient_id=str(patient), open_as_of=when, **params))

    assert as_of("2020-02-05T00:00:00Z") == [later]
    assert as_of("2020-02-20T00:00:00Z") == [earlier]
    assert as_of("2020-03-01T00:00:00Z") == []
    assert as_of("2020-02-05T00:00:00Z", epr_encounter_id="2") == [later]
    assert as_of("2020-02-05T00:00:00Z", epr_encounter_id="1") == []


# --- GET /dhos/v2/encounters ------------------------------------------------------------------


def test_modified_since_is_strictly_after_newest_change_first(client, db):
    noon = insert_encounter(db, modified="2021-03-01T12:00:00Z")
    evening = insert_encounter(db, modified="2021-03-01T18:00:00Z")
    insert_encounter(db, modified="2021-02-28T23:59:59.999Z")
    midnight = insert_encounter(db, modified="2021-03-01T00:00:00Z")

    assert uuids(get(client, "/dhos/v2/encounters", modified_since="2021-03-01T12:00:00Z")) == [evening]
    assert uuids(get(client, "/dhos/v2/encounters", modified_since="2021-03-01T11:59:59.999+00:00")) == [evening, noon]
    # A plain date is midnight UTC: an encounter modified exactly then is not "after" it.
    assert uuids(get(client, "/dhos/v2/encounters", modified_since="2021-03-01")) == [evening, noon]
    assert uuids(get(client, "/dhos/v2/encounters", modified_since="2021-03-01T01:59:59.9995+02:00")) == [
        evening,
        noon,
        midnight,
    ]


def test_modified_since_flags(client, db):
    parent = insert_encounter(db, modified="2021-03-01T12:00:00Z")
    child = insert_encounter(db, child_of_encounter_uuid=parent, modified="2021-03-01T13:00:00Z")
    deleted = insert_encounter(db, deleted_at="2021-03-01T00:00Z", modified="2021-03-01T14:00:00Z")

    def changed(**flags) -> list[dict]:
        return get(client, "/dhos/v2/encounters", modified_since="2021-01-01", **flags)

    assert uuids(changed()) == [parent]
    assert uuids(changed(show_children="true")) == [child, parent]
    assert uuids(changed(show_deleted="true", show_children="true")) == [deleted, child, parent]
    assert set(changed()[0]) == FULL_KEYS  # no child_encounter_uuids on this route
    assert set(changed(expanded="true")[0]) == FULL_KEYS | EXPANDED_KEYS
    assert set(changed(compact="true")[0]) == COMPACT_KEYS
    assert set(changed(compact="true", expanded="true")[0]) == COMPACT_KEYS | EXPANDED_KEYS
    assert changed(show_children="true")[0]["child_of_encounter_uuid"] == str(parent)


# --- latest -----------------------------------------------------------------------------------


def test_latest_forms_and_404(client, db):
    patient = uuid4()
    encounter = insert_encounter(db, patient_uuid=patient)
    child = insert_encounter(db, patient_uuid=patient, child_of_encounter_uuid=encounter, epr_encounter_id="c")

    full = get(client, "/dhos/v2/encounter/latest", patient_id=str(patient))
    assert set(full) == FULL_KEYS | {"child_encounter_uuids"}
    assert full["child_encounter_uuids"] == [str(child)]
    assert set(get(client, "/dhos/v2/encounter/latest", patient_id=str(patient), compact="true")) == COMPACT_KEYS

    unknown = uuid4()
    response = client.get("/dhos/v2/encounter/latest", params={"patient_id": str(unknown)}, headers=auth())
    assert response.status_code == 404
    assert str(unknown) in response.json()["message"]


def test_post_latest_answers_per_patient_with_the_same_rule_as_get(client, db):
    first, second, without = uuid4(), uuid4(), uuid4()
    insert_encounter(db, patient_uuid=first, admitted_at="2020-01-01T00:00Z", discharged_at="2020-01-05T00:00Z")
    insert_encounter(db, patient_uuid=first, admitted_at="2020-02-01T00:00Z", epr_encounter_id="x")
    insert_encounter(db, patient_uuid=second, admitted_at="2020-01-01T00:00Z", discharged_at="2020-01-05T00:00Z")
    insert_encounter(db, patient_uuid=without, deleted_at="2020-01-02T00:00Z")

    for params in ({}, {"open_as_of": "2020-01-03T00:00:00Z"}, {"open_as_of": "2020-01-06T00:00:00Z"}):
        answer = post(client, "/dhos/v2/encounter/latest", [first, second, without, first], **params)
        expected = {str(p): latest(client, p, **params) for p in (first, second, without)}
        assert {p: UUID(e["uuid"]) for p, e in answer.items()} == {p: e for p, e in expected.items() if e}
        assert all(set(e) == FULL_KEYS | {"child_encounter_uuids"} for e in answer.values())

    compact = post(client, "/dhos/v2/encounter/latest", [first], compact="true")
    assert set(compact[str(first)]) == COMPACT_KEYS
    assert post(client, "/dhos/v2/encounter/latest", []) == {}
    assert post(client, "/dhos/v2/encounter/latest", [without]) == {}


# --- scenarios of ward life -------------------------------------------------------------------


def test_parent_and_child_closed_or_deleted(client, db):
    patient = uuid4()
    parent = insert_encounter(db, patient_uuid=patient, epr_encounter_id="parent")
    child = insert_encounter(db, patient_uuid=patient, child_of_encounter_uuid=parent, epr_encounter_id="child")

    def state() -> dict:
        return {
            "latest": latest(client, patient),
            "open_for_patient": uuids(post(client, "/dhos/v1/encounter/patients", [patient])),
            **census(client, [WARD_A]),
            "children": get(client, f"/dhos/v1/encounter/{parent}/children"),
        }

    assert state() == {
        "latest": parent,
        "open_for_patient": [parent],
        "at_locations": [parent],
        "patient_count": {str(WARD_A): 1},
        "children": [str(child)],
    }

    update_encounter(db, child, discharged_at="2020-01-02T00:00Z")  # child closed: nothing changes
    assert state()["latest"] == parent and state()["at_locations"] == [parent]

    update_encounter(db, child, deleted_at="2020-01-03T00:00Z")  # child deleted
    assert state()["children"] == []
    assert get(client, "/dhos/v2/encounter/latest", patient_id=str(patient))["child_encounter_uuids"] == [str(child)]

    update_encounter(db, parent, discharged_at="2020-01-04T00:00Z")  # parent closed
    assert state() == {
        "latest": parent,
        "open_for_patient": [],
        "at_locations": [],
        "patient_count": {},
        "children": [],
    }

    update_encounter(db, parent, deleted_at="2020-01-05T00:00Z")  # parent deleted
    assert state()["latest"] is None
    assert get(client, "/dhos/v2/encounter", patient_id=str(patient)) == []
    assert post(client, "/dhos/v2/encounter/latest", [patient]) == {}


def test_three_epr_encounters_walked_back_by_delete_and_discharge(client, db):
    patient = uuid4()
    january, february, march = (
        insert_encounter(db, patient_uuid=patient, epr_encounter_id=f"EPR-{m}", admitted_at=f"2020-{m}-01T00:00Z")
        for m in ("01", "02", "03")
    )

    def answers() -> tuple:
        return (
            latest(client, patient),
            uuids(post(client, "/dhos/v1/encounter/patients", [patient])),
            uuids(post(client, "/dhos/v1/encounter/locations", [WARD_A])),
        )

    assert answers() == (march, [march], [march])
    update_encounter(db, march, deleted_at="2020-03-02T00:00Z")
    assert answers() == (february, [february], [february])
    update_encounter(db, february, discharged_at="2020-02-10T00:00Z")
    assert answers() == (january, [january], [january])  # the open one wins over a newer admission
    update_encounter(db, january, discharged_at="2020-01-10T00:00Z")
    assert answers() == (february, [], [])  # none open: the newest admission, deleted ones never
    assert latest(client, patient, open_as_of="2020-02-05T00:00:00Z") == february
    assert latest(client, patient, open_as_of="2020-02-10T00:00:00Z") is None


@pytest.mark.parametrize(
    ("open_as_of", "is_open"),
    [
        ("2020-01-10T12:00:00Z", False),  # discharged exactly then: not open then
        ("2020-01-10T13:00:00+01:00", False),  # the same instant, another offset
        ("2020-01-10T11:59:59.999Z", True),
        ("2020-01-10T12:59:59.999999+01:00", True),
        ("2020-01-10T12:00:00.001Z", False),
    ],
)
def test_open_as_of_boundary(client, db, open_as_of, is_open):
    patient = uuid4()
    encounter = insert_encounter(db, patient_uuid=patient, discharged_at="2020-01-10T12:00:00Z")

    expected_list = [encounter] if is_open else []
    assert census(client, [WARD_A], open_as_of=open_as_of) == {
        "at_locations": expected_list,
        "patient_count": {str(WARD_A): 1} if is_open else {},
    }
    assert uuids(post(client, "/dhos/v1/encounter/patients", [patient], open_as_of=open_as_of)) == expected_list
    assert latest(client, patient, open_as_of=open_as_of) == (encounter if is_open else None)
    listed = get(client, "/dhos/v2/encounter", patient_id=str(patient), open_as_of=open_as_of)
    assert uuids(listed) == expected_list
    # Without open_as_of the census means "open now": a discharged encounter is never in it.
    assert census(client, [WARD_A]) == {"at_locations": [], "patient_count": {}}


def test_a_patient_in_two_wards_counts_in_both(client, db):
    patient, neighbour = uuid4(), uuid4()
    in_a = insert_encounter(db, patient_uuid=patient, epr_encounter_id="A", admitted_at="2020-01-01T00:00Z")
    in_b = insert_encounter(
        db, patient_uuid=patient, epr_encounter_id="B", admitted_at="2020-02-01T00:00Z", location_uuid=WARD_B
    )
    neighbours = insert_encounter(db, patient_uuid=neighbour)

    counts = post(client, "/dhos/v1/encounter/locations/patient_count", [WARD_A, WARD_B, uuid4(), WARD_A])
    assert counts == {str(WARD_A): 2, str(WARD_B): 1}
    both = uuids(post(client, "/dhos/v1/encounter/locations", [WARD_A, WARD_B]))
    assert sorted(both) == sorted([in_b, neighbours])  # one per patient: the latest of theirs there
    assert set(uuids(post(client, "/dhos/v1/encounter/locations", [WARD_A]))) == {in_a, neighbours}
    assert uuids(post(client, "/dhos/v1/encounter/locations", [WARD_B])) == [in_b]
    assert uuids(post(client, "/dhos/v1/encounter/patients", [patient, patient])) == [in_b]


def test_census_lists_one_per_patient_ordered_by_patient_in_both_forms(client, db):
    patients = sorted(uuid4() for _ in range(3))
    encounters = [insert_encounter(db, patient_uuid=p) for p in reversed(patients)][::-1]
    insert_encounter(db, child_of_encounter_uuid=encounters[0], epr_encounter_id="child")

    for route, ids in (("/dhos/v1/encounter/locations", [WARD_A]), ("/dhos/v1/encounter/patients", patients)):
        full = post(client, route, ids)
        assert uuids(full) == encounters
        assert all(set(e) == FULL_KEYS for e in full)
        compact = post(client, route, ids, compact="true")
        assert uuids(compact) == encounters
        assert all(set(e) == COMPACT_KEYS for e in compact)
        assert post(client, route, []) == []
