"""The development routes (POST /encounter/bulk, POST /drop_data): served only with
ALLOW_DROP_DATA=true, refused at start together with ENVIRONMENT=production, absent (404) otherwise."""

from __future__ import annotations

from dataclasses import replace

import pytest
from litestar.testing import TestClient

from encounters_service.app import create_app
from encounters_service.auth import READ_SCOPE
from encounters_service.settings import SettingsError, load_settings
from tests.api.test_encounter_writes import TABLES, assert_error, create, create_body, outbox, snapshot
from tests.helpers import TEST_SETTINGS, as_app, auth

BULK = "/encounter/bulk"
DROP_DATA = "/drop_data"


@pytest.fixture
def dev_client(fresh_database: str):
    with TestClient(create_app(replace(TEST_SETTINGS, allow_drop_data=True), as_app(fresh_database))) as test_client:
        yield test_client


@pytest.mark.parametrize("path", [BULK, DROP_DATA])
def test_without_the_flag_the_routes_do_not_exist(client, db, path):
    create(client)
    before = snapshot(db)
    assert_error(client.post(path, json=[create_body()], headers=auth()), 404)
    assert snapshot(db) == before


def test_the_flag_is_refused_in_production():
    with pytest.raises(SettingsError, match="ALLOW_DROP_DATA=true is refused with ENVIRONMENT=production"):
        load_settings({"ALLOW_DROP_DATA": "true", "ENVIRONMENT": "Production"})
    assert load_settings({"ALLOW_DROP_DATA": "true", "ENVIRONMENT": "demo"}).allow_drop_data
    assert not load_settings({"ENVIRONMENT": "production"}).allow_drop_data


def test_bulk_creates_every_encounter_in_order_with_their_events(dev_client, db):
    bodies = [create_body() for _ in range(300)]
    response = dev_client.post(BULK, json=bodies, headers=auth())
    assert response.status_code == 200, response.text
    created = response.json()
    assert len(created) == 300
    stored = dict(db.execute("SELECT uuid::text, patient_uuid::text FROM encounters.encounter").fetchall())
    assert [stored[uuid] for uuid in created] == [body["patient_uuid"] for body in bodies]
    assert sorted(about for key, _, about in outbox(db) if key == "dhos.DM000007") == sorted(created)
    one = dev_client.get(f"/dhos/v1/encounter/{created[0]}", headers=auth()).json()
    assert one["location_uuid"] == bodies[0]["location_uuid"]


def test_bulk_is_all_or_none_and_names_the_item_refused(dev_client, db):
    patient = create_body()["patient_uuid"]
    bodies = [create_body(), create_body(patient_uuid=patient), create_body(patient_uuid=patient)]
    before = snapshot(db)
    assert_error(dev_client.post(BULK, json=bodies, headers=auth()), 409, "item 3:", "open local encounter")
    assert_error(dev_client.post(BULK, json=[create_body(), {"patient_uuid": "x"}], headers=auth()), 400)
    assert snapshot(db) == before


def test_bulk_takes_bodies_beyond_the_usual_limit(dev_client, db):
    bodies = [create_body(encounter_type="x" * 200) for _ in range(5_000)]  # about 2 MB, 25 statements
    response = dev_client.post(BULK, json=bodies, headers=auth())
    assert response.status_code == 200, response.text
    assert db.execute("SELECT count(*) FROM encounters.encounter").fetchone() == (5_000,)


def test_a_refusal_in_a_later_statement_rolls_back_the_earlier_ones(dev_client, db):
    bodies = [create_body() for _ in range(201)]
    bodies.append(create_body(patient_uuid=bodies[0]["patient_uuid"]))
    before = snapshot(db)
    assert_error(dev_client.post(BULK, json=bodies, headers=auth()), 409, "item 202:")
    assert snapshot(db) == before


def test_drop_data_empties_the_tables_and_keeps_the_schema(dev_client, db):
    encounter = create(dev_client)
    dev_client.patch(
        f"/dhos/v1/encounter/{encounter['uuid']}",
        json={"location_uuid": create_body()["location_uuid"]},
        headers=auth(),
    )
    migrations = db.execute("SELECT count(*) FROM public._yoyo_migration").fetchone()
    functions = db.execute("SELECT count(*) FROM encounters.deployed_function").fetchone()

    response = dev_client.post(DROP_DATA, headers=auth())
    assert response.status_code == 200, response.text
    assert response.json()["complete"] is True
    assert response.json()["time_taken"].endswith("s")
    assert snapshot(db) == {table: [] for table in TABLES}
    assert db.execute("SELECT count(*) FROM public._yoyo_migration").fetchone() == migrations
    assert db.execute("SELECT count(*) FROM encounters.deployed_function").fetchone() == functions
    create(dev_client)  # the schema still works


@pytest.mark.parametrize("path", [BULK, DROP_DATA])
def test_the_routes_need_the_write_scope(dev_client, db, path):
    create(dev_client)
    before = snapshot(db)
    assert_error(dev_client.post(path, json=[create_body()]), 401)
    assert_error(dev_client.post(path, json=[create_body()], headers=auth(READ_SCOPE)), 403)
    assert snapshot(db) == before
