"""Logging: one line per request (method, path, status, duration, request id) in each format,
and no secrets in it."""

from __future__ import annotations

import json
import logging

import pytest

from encounters_service.logs import configure_logging
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
    assert (request["method"], request["path"], request["status"], request["request_id"]) == ("GET", "/running", 200, "rid-1")
    assert request["duration_ms"] >= 0


@pytest.mark.parametrize("log_format", ["plain", "colour"])
def test_text_request_line(client, log_lines, log_format):
    lines = log_lines("INFO", log_format, lambda: client.get("/no-such-route"))
    assert any("GET /no-such-route 404" in line and "request_id=" in line for line in lines)


def test_level_error_hides_request_lines(client, log_lines):
    assert not [line for line in log_lines("ERROR", "plain", lambda: client.get("/running")) if "/running" in line]


def test_tokens_and_key_never_reach_the_logs_even_at_debug(client, log_lines):
    headers = auth()
    lines = log_lines("DEBUG", "json", lambda: [client.get("/running", headers=headers), client.get("/dhos/x", headers=headers)])
    text = "\n".join(lines)
    assert headers["Authorization"].split()[1] not in text
    assert TEST_SETTINGS.hs_key not in text
