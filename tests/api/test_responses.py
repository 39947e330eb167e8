"""The per-request shortcuts of issue 17 item 4 answer exactly as what they replace: JsonDocument
as Litestar's Response (status, header lines in order, body), `header` and `_declares_body` as
request.headers, the request log's record as Logger.info's."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from litestar import Litestar, Request, Response

from encounters_service import logs
from encounters_service.api.common import JsonDocument, _declares_body, header
from encounters_service.auth import caller_from_request
from encounters_service.logs import REQUEST_LINE, JsonFormatter, TextFormatter, configure_logging, log_request

APP = Litestar(route_handlers=[])


def request_with(headers: list[tuple[bytes, bytes]], method: str = "GET") -> Request:
    scope: dict[str, Any] = {"type": "http", "method": method, "path": "/", "headers": headers, "state": {},
                             "query_string": b"", "app": APP, "litestar_app": APP}  # fmt: skip
    return Request(scope)  # type: ignore[arg-type]


def answered(response: Response, request: Request, **kwargs: Any) -> list[dict[str, Any]]:
    """The ASGI messages the response's ASGI app sends."""
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        messages.append(message)

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    asgi = response.to_asgi_response(None, request, **kwargs)
    asyncio.run(asgi(request.scope, receive, send))  # type: ignore[arg-type]
    return messages


@pytest.mark.parametrize(
    ("content", "headers", "status_code", "kwargs"),
    [
        (b'{"uuid": "x"}', None, None, {}),
        (b"null", None, None, {"status_code": 200}),
        (b"[1,2]", {"ETag": 'W/"3"'}, None, {}),
        (b"[]", {"ETag": 'W/"3"', "X-Encounters-LSN": "0/16B3740"}, None, {}),
        (b"{}", {"Content-Type": "application/merge-patch+json"}, 201, {}),  # its own type is kept
        (b"{}", {"content-length": "2"}, None, {}),
        (b"", {"ETag": 'W/"3"'}, 304, {}),  # no body: Litestar's own way
        (b"{}", None, None, {"headers": {"X-Route": "1"}}),  # route headers: Litestar's own way
        (b"null", None, None, {"is_head_response": True}),
        (b"{}", None, None, {"status_code": 201}),  # the route's status when the response has none
    ],
)
def test_a_json_document_is_answered_as_litestars_response(content, headers, status_code, kwargs):
    request = request_with([])
    ours = JsonDocument(content=content, media_type="application/json", headers=headers, status_code=status_code)
    litestars = Response(content=content, media_type="application/json", headers=headers, status_code=status_code)
    assert answered(ours, request, **kwargs) == answered(litestars, request, **kwargs)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"host", b"x"), (b"if-none-match", b'W/"1"'), (b"if-none-match", b'W/"2"')],
        [(b"If-None-Match", b'"caf\xe9"')],  # a mixed-case name (ASGI servers send lower case); latin-1
        [(b"content-length", b"0")],
        [(b"content-length", b"12")],
        [(b"content-length", b"0"), (b"content-length", b"5")],  # the first counts, as with .get
        [(b"transfer-encoding", b"chunked")],
        [(b"content-length", b"0"), (b"Transfer-Encoding", b"chunked")],
        [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")],
        [(b"Authorization", b"Bearer \xe9")],
    ],
)
def test_headers_read_from_the_scope_as_request_headers_has_them(headers):
    request = request_with(headers)
    fresh = request_with(headers)  # request.headers is cached in the scope: one of its own
    assert header(request, b"if-none-match") == fresh.headers.get("if-none-match")
    assert _declares_body(request) == (
        fresh.headers.get("content-length", "0") != "0" or "transfer-encoding" in fresh.headers
    )
    authorizations = fresh.headers.getall("authorization", [])
    if len(authorizations) == 1:
        seen: list[str | None] = []
        APP.state.authenticator = type("Seen", (), {"authenticate": lambda self, value: seen.append(value)})()
        caller_from_request(request)
        assert seen == authorizations


FIELDS = {"method": "GET", "path": "/dhos/v1/encounter/x", "status": 200, "duration_ms": 0.42, "request_id": "r1"}


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_the_request_record_is_logger_infos(log_format):
    records: list[logging.LogRecord] = []
    configure_logging("INFO", log_format)
    capture = logging.Handler()
    capture.emit = records.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(capture)
    try:
        log_request(dict(FIELDS))
        logs.request_log.info(REQUEST_LINE, *FIELDS.values(), extra={"fields": dict(FIELDS)})
    finally:
        configure_logging("INFO", "plain")
        logging.getLogger().handlers.clear()
    ours, standard = records
    assert ours is not standard
    ours.created, ours.msecs, ours.relativeCreated = standard.created, standard.msecs, standard.relativeCreated
    assert vars(ours) == vars(standard)
    for formatter in (TextFormatter(logs._TEXT_FORMAT), JsonFormatter()):
        assert formatter.format(ours) == formatter.format(standard)


def test_the_request_line_is_logged_the_standard_way_when_logging_is_set_up_otherwise(caplog):
    """Without configure_logging (a record would carry the thread and the caller's file)."""
    before, logging.logThreads = logging.logThreads, True
    try:
        with caplog.at_level(logging.INFO, logger=logs.request_log.name):
            log_request(dict(FIELDS))
    finally:
        logging.logThreads = before
    [record] = [r for r in caplog.records if r.name == logs.request_log.name]
    assert record.thread is not None and record.fields == FIELDS


@pytest.mark.parametrize("created", [0.0, 1764571631.0, 1764571631.999, 1764571632.0005, 1764571699.5])
def test_times_are_formatted_as_before_the_seconds_were_cached(created):
    formatter = TextFormatter(logs._TEXT_FORMAT)
    for at in (created, created + 0.25, created - 1):  # the cache's second, another in it, one before
        record = logging.LogRecord("x", logging.INFO, "", 0, "m", (), None)
        record.created, record.msecs = at, int((at - int(at)) * 1000) + 0.0
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(record.msecs):03d}Z"
        assert formatter.formatTime(record) == expected
