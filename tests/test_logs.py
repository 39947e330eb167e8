"""Logging: one line per request (method, path, status, duration, request id) in each format,
and no secrets in it."""

from __future__ import annotations

import json
import logging
import re
import uuid

import pytest

from encounters_service.auth import WRITE_SCOPE
from encounters_service.logs import configure_logging
from tests.api.test_encounter_writes import ENCOUNTERS, create_body, new_uuid
from tests.api.test_errors import app_client  # noqa: F401 (a fixture)
from tests.conftest import drop_database
from tests.helpers import TEST_SETTINGS, auth


@pytest.fixture
def log_lines(capfd):
    def read(level: str, log_format: str, do) -> list[str]:
        configure_logging(level, log_format)
        try:
            do()
        finally:
            configure_logging("INFO", "plain")
        return [line for line in capfd.readouterr().err.splitlines() if line]

    yield read
    logging.getLogger().handlers.clear()


def test_json_request_line_has_method_path_status_duration_and_id(client, log_lines):
    lines = log_lines("INFO", "json", lambda: client.get("/running", headers={"X-Request-ID": "rid-1"}))
    entries = [json.loads(line) for line in lines]
    request = next(entry for entry in entries if entry["logger"] == "encounters_service.requests")
    assert (request["method"], request["path"], request["status"], request["request_id"]) == (
        "GET",
        "/running",
        200,
        "rid-1",
    )
    assert request["duration_ms"] >= 0


@pytest.mark.parametrize("log_format", ["plain", "colour"])
def test_text_request_line(client, log_lines, log_format):
    lines = log_lines("INFO", log_format, lambda: client.get("/no-such-route"))
    assert any("GET /no-such-route 404" in line and "request_id=" in line for line in lines)


def test_level_error_hides_request_lines(client, log_lines):
    assert not [line for line in log_lines("ERROR", "plain", lambda: client.get("/running")) if "/running" in line]


def test_tokens_and_key_never_reach_the_logs_even_at_debug(client, log_lines):
    headers = auth()
    lines = log_lines(
        "DEBUG", "json", lambda: [client.get("/running", headers=headers), client.get("/dhos/x", headers=headers)]
    )
    text = "\n".join(lines)
    assert headers["Authorization"].split()[1] not in text
    assert TEST_SETTINGS.hs_key not in text


@pytest.mark.parametrize("log_format", ["json", "plain"])
def test_no_secret_reaches_the_logs_on_error_paths_and_writes(
    app_client,  # noqa: F811 (the fixture)
    pg_server,
    fresh_database,
    log_lines,
    log_format,
):
    """Every kind of answer — writes, 400, 401, 403, 404, 409, 413, 422, 500, 503 — at DEBUG, with the
    database driver's own logger at DEBUG too (it keeps itself at WARNING otherwise)."""
    headers = auth()
    secret = headers["Authorization"].split()[1]
    forged = f"Bearer {secret[:-8]}AAAAAAAA"  # a bad signature on a real token
    encounter_id = "/dhos/v1/encounter/{}"

    def every_kind_of_answer() -> list[int]:
        created = app_client.post(ENCOUNTERS, json=create_body(epr_encounter_id="LOG-1"), headers=headers)
        url = encounter_id.format(created.json()["uuid"])
        answers = [
            created,
            app_client.patch(url, json={"location_uuid": new_uuid()}, headers=headers),
            app_client.patch(url, json={"spo2_scale": "two"}, headers=headers),
            app_client.get(url, headers={"Authorization": forged}),
            app_client.get(url, headers={"Authorization": secret}),  # the token without "Bearer"
            app_client.get(url, headers=auth(WRITE_SCOPE)),
            app_client.get(encounter_id.format(new_uuid()), headers=headers),
            app_client.post(ENCOUNTERS, json=create_body(epr_encounter_id="LOG-1"), headers=headers),
            app_client.post(
                ENCOUNTERS, content=b"x" * (1024 * 1024 + 1), headers=headers | {"Content-Type": "application/json"}
            ),
            app_client.post(ENCOUNTERS, json=create_body(child_of_encounter_uuid=new_uuid()), headers=headers),
            app_client.get("/test/crash", headers=headers),
        ]
        drop_database(pg_server, fresh_database.rsplit("/", 1)[1])
        answers.append(app_client.get(url, headers=headers))
        return [answer.status_code for answer in answers]

    psycopg_logger = logging.getLogger("psycopg")
    level = psycopg_logger.level
    psycopg_logger.setLevel(logging.DEBUG)
    try:
        statuses = []
        text = "\n".join(log_lines("DEBUG", log_format, lambda: statuses.extend(every_kind_of_answer())))
    finally:
        psycopg_logger.setLevel(level)
    assert statuses == [200, 200, 400, 401, 401, 403, 404, 409, 413, 422, 500, 503]
    assert "unexpected error" in text and "does not exist" in text  # the 500 and the vanished database logged
    for leaked in (secret, secret.split(".")[2], forged.split()[1], TEST_SETTINGS.hs_key):
        assert leaked not in text


def test_debug_names_each_query_file_run_and_its_time(client, caplog):
    with caplog.at_level(logging.DEBUG, logger="encounters_service.db"):
        client.get("/dhos/v2/encounter/latest", params={"patient_id": str(uuid.uuid4())}, headers=auth())
    [said] = [record.getMessage() for record in caplog.records if record.name == "encounters_service.db"]
    assert re.fullmatch(r"query encounters\.latest: 0 rows in \d+\.\d\d ms", said)
