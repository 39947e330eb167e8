"""Log injection: nothing a caller sends can forge a log line or put raw control characters in the
log, in any of the three formats. Over the served service (`serve`, as production runs it), reading
its real log output; and through the formatters for what the service logs besides the request line
(an exception's text).

- the path is logged with space, "%" and every non-printable or non-ASCII character percent-encoded
  (a newline, NUL, ESC, an undecodable character never appear raw), so that the plain request
  line "METHOD PATH STATUS DURATION request_id=ID" splits into exactly those fields;
- every other message has its control characters escaped, and an exception's traceback follows on
  indented lines, so that in the plain and colour formats only a record's first line starts at the
  margin;
- an incoming X-Request-ID is kept only if it matches [A-Za-z0-9._-]{1,64}; else the service makes one.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from encounters_service.logs import configure_logging
from tests.conftest import template_clone
from tests.helpers import SERVICE_ENV, Service, as_app

FORGED_STAMP = "2026-12-01 06:00:00,000"
FORGED = f"/running%0a{FORGED_STAMP.replace(' ', '%20')}%20ERROR%20encounters_service.errors:%20forged"
# Percent-encoded paths whose decoded form holds what must never reach the log raw, and how the
# log shows each (the path percent-encoded again, in one canonical form).
HOSTILE_PATHS = {
    FORGED: f"/running%0A{FORGED_STAMP.replace(' ', '%20')}%20ERROR%20encounters_service.errors:%20forged",
    "/running%0d%0a%00": "/running%0D%0A%00",
    "/running%1b[31mred%1b[0m": "/running%1B[31mred%1B[0m",
    "/running%7f%c2%85%e2%80%a8%e2%80%ae": "/running%7F%C2%85%E2%80%A8%E2%80%AE",  # DEL, NEL, U+2028, U+202E
    "/dhos/v2/encounter%20200%201.0ms%20request_id=forged": "/dhos/v2/encounter%20200%201.0ms%20request_id=forged",
    "/caf%c3%a9/%25/a\\b": "/caf%C3%A9/%25/a\\b",
}
REQUEST_IDS = {
    "ok-1.2_3": True,
    "A" * 64: True,
    "A" * 65: False,
    "abc def key=value": False,
    "id;rm": False,
    "": False,
    "caf\xe9": False,
    "x%0ay": False,
}
TEXT_RECORD = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ \S+: ")
COLOUR_CODES = re.compile(r"\x1b\[\d+m")
RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module", params=["plain", "colour", "json"])
def served(request, pg_server, template_conninfo) -> Iterator[tuple[str, Service]]:
    with template_clone(pg_server) as conninfo:
        env = {**SERVICE_ENV, "DATABASE_URL": as_app(conninfo), "WEB_CONCURRENCY": "1", "LOG_FORMAT": request.param}
        service = Service.start(env)
        try:
            service.wait_until_running()
            yield request.param, service
        finally:
            service.stop()


def send(service: Service, path: str, request_id: str | None = None) -> httpx.Response:
    """`path` sent as written (httpx would re-encode it), with an X-Request-ID if given."""
    headers = {} if request_id is None else {"X-Request-ID": request_id.encode("latin-1")}
    with httpx.Client(base_url=service.base_url) as http:
        request = http.build_request("GET", "/", headers=headers)
        request.url = request.url.copy_with(raw_path=path.encode("latin-1"))
        return http.send(request)


def request_records(log_format: str, output: str) -> list[dict]:
    """The request lines of the log, as {method, path, status, request_id}, checking that each is
    one unambiguous line of its format."""
    records = []
    for line in output.splitlines():
        if log_format == "json":
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("logger") == "encounters_service.requests":
                    records.append(entry)
            continue
        text = COLOUR_CODES.sub("", line) if log_format == "colour" else line
        if " encounters_service.requests: " in text:
            assert TEXT_RECORD.match(text), line
            method, path, status, duration, request_id = text.split(": ", 1)[1].split(" ")
            assert re.fullmatch(r"\d+\.\dms", duration) and request_id.startswith("request_id="), line
            records.append({"method": method, "path": path, "status": int(status), "request_id": request_id[11:]})
    return records


def test_hostile_paths_and_request_ids_cannot_forge_or_colour_the_log(served):
    log_format, service = served
    for number, path in enumerate(HOSTILE_PATHS):
        assert send(service, path, f"path-{number}").status_code in (400, 404), path
    answers = {given: send(service, "/running", given) for given in REQUEST_IDS}
    output = service.output()

    assert FORGED_STAMP not in output.replace(FORGED_STAMP.replace(" ", "%20"), "")
    no_colours = COLOUR_CODES.sub("", output) if log_format == "colour" else output
    assert not RAW.findall(no_colours) and "\x1b" not in no_colours
    records = {record["request_id"]: record for record in request_records(log_format, output)}
    for number, logged in enumerate(HOSTILE_PATHS.values()):
        assert (records[f"path-{number}"]["method"], records[f"path-{number}"]["path"]) == ("GET", logged)

    for given, answer in answers.items():
        request_id = answer.headers["x-request-id"]
        if REQUEST_IDS[given]:
            assert request_id == given
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", request_id), (given, request_id)
        assert records[request_id]["path"] == "/running"
    assert "key=value" not in output


def test_a_response_never_echoes_a_hostile_request_id(served):
    _, service = served
    for given in ("abc def key=value", "a\tb", "a" * 200):
        assert send(service, "/running", given).headers["x-request-id"] != given


class Hostile(Exception):
    pass


def formatted(log_format: str, capfd, log) -> str:
    configure_logging("DEBUG", log_format)
    try:
        log(logging.getLogger("encounters_service.test"))
    finally:
        configure_logging("INFO", "plain")
        logging.getLogger().handlers.clear()
    return capfd.readouterr().err


@pytest.mark.parametrize("log_format", ["plain", "colour"])
def test_a_logged_message_or_traceback_cannot_start_a_line_of_its_own(capfd, log_format):
    forged = f"value\n{FORGED_STAMP} ERROR encounters_service.errors: forged\x1b[31m\x00\u2028"

    def log(logger: logging.Logger) -> None:
        logger.warning("a message with %s", forged)
        try:
            raise Hostile(forged)
        except Hostile:
            logger.exception("unexpected error (request %s)", forged)

    lines = formatted(log_format, capfd, log).splitlines()
    text = [COLOUR_CODES.sub("", line) for line in lines]
    at_the_margin = [line for line in text if not line.startswith(" ")]
    assert len(at_the_margin) == 2 and all(TEXT_RECORD.match(line) for line in at_the_margin), lines
    assert "\\n2026-12-01 06:00:00,000 ERROR" in at_the_margin[0] and "\\x1b[31m\\x00\\u2028" in at_the_margin[0]
    assert any(line.endswith("Hostile: value") for line in text)  # the exception's own text, its lines indented
    assert not RAW.findall("\n".join(text)) and "\x1b" not in "\n".join(text)


def test_a_json_record_is_one_line_whatever_it_holds(capfd):
    def log(logger: logging.Logger) -> None:
        try:
            raise Hostile("a\nb\x1b\ud800")
        except Hostile:
            logger.exception("x\ny\x00 %s", "\ud800")

    [line] = formatted("json", capfd, log).splitlines()
    entry = json.loads(line)
    assert entry["message"] == "x\ny\x00 \ud800" and "Hostile: a\nb\x1b\ud800" in entry["exception"]
    assert line.isascii() and not RAW.findall(line)


def test_an_undecodable_path_is_logged_and_answered(served):
    _, service = served
    answer = send(service, "/running%ed%a0%80%ff", "undecodable")
    assert answer.status_code in (400, 404)
    [record] = [r for r in request_records(served[0], service.output()) if r["request_id"] == "undecodable"]
    assert record["path"].startswith("/running%") and record["path"].isascii(), record
