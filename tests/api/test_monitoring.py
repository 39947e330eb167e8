"""Monitoring routes: no token needed."""

from __future__ import annotations


def test_running(client):
    response = client.get("/running")
    assert response.status_code == 200
    assert response.json() == {"running": True}


def test_version_has_version_build_and_hash(client):
    body = client.get("/version").json()
    assert set(body) == {"version", "circle", "hash"}
    assert body["version"] == "0.1.0"
    assert all(isinstance(value, str) and value for value in body.values())


def test_healthcheck_reports_database_and_outbox(client):
    response = client.get("/healthcheck")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "outbox_waiting": 0, "outbox_oldest_age_seconds": None}


def test_every_response_carries_a_request_id(client):
    given = client.get("/running", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = {client.get("/no-such-route").headers["x-request-id"] for _ in range(3)}
    assert len(made) == 3 and all(len(made_id) == 32 and int(made_id, 16) >= 0 for made_id in made)


def test_openapi_document_is_served(client):
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert "/running" in response.json()["paths"]


def test_live_server_answers_over_real_http(live_server):
    import httpx

    assert httpx.get(f"{live_server}/running").json() == {"running": True}
