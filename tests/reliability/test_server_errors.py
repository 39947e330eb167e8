"""Errors of the HTTP layer, against `encounters-service serve` (granian, as production runs it).

Granian's HTTP/1 parser (hyper) refuses some requests before the app sees them, and writes those
answers itself: a status line, `content-length: 0`, `connection: close`, no body — it has no hook
for a body, so these cannot carry {"message"}. They are listed here, precisely, so that a change of
server or version that changes them shows up. Whatever reaches the app is answered with a message."""

from __future__ import annotations

import pytest

from tests.reliability.raw_http import (
    address,
    exchange,
    head,
    message_of,
    served,  # noqa: F401 (a fixture)
    served_database,  # noqa: F401 (a fixture)
    status_and_body,
)

HOST = b"Host: 127.0.0.1\r\n"
FIELDS_100 = b"".join(b"X-%d: 1\r\n" % number for number in range(98))  # with Host and Connection: 100

SERVER_ANSWERS = {
    "101 header fields (hyper's limit is 100)": (
        431,
        b"GET /running HTTP/1.1\r\n" + HOST + FIELDS_100 + b"X-More: 1\r\n",
    ),
    # Over granian's 408 KiB buffer a header block may be refused, depending on how its bytes
    # arrive (500 KB: 4 times in 15); over 1 MB, always.
    "a 1 MB header block": (431, b"GET /running HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 1_000_000 + b"\r\n"),
    "a space in a header name": (400, b"GET /running HTTP/1.1\r\n" + HOST + b"Bad Name: 1\r\n"),
    "an obsolete folded header line": (400, b"GET /running HTTP/1.1\r\n" + HOST + b"X-A: 1\r\n  folded\r\n"),
    "an unknown HTTP version": (400, b"GET /running HTTP/9.9\r\n" + HOST),
    "not HTTP at all (a TLS hello)": (400, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n"),
    "two different Content-Lengths": (
        400,
        b"POST /running HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nContent-Length: 4\r\n",
    ),
    "a Content-Length that is not a number": (400, b"POST /running HTTP/1.1\r\n" + HOST + b"Content-Length: x\r\n"),
    "a Transfer-Encoding other than chunked": (
        400,
        b"POST /running HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n",
    ),
    "a request target of 65,535 bytes or more": (414, b"GET /" + b"p" * 65_535 + b" HTTP/1.1\r\n" + HOST),
}


@pytest.mark.parametrize("case", SERVER_ANSWERS)
def test_what_the_server_refuses_itself_has_a_status_and_no_body(served, case):  # noqa: F811
    status, request = SERVER_ANSWERS[case]
    answer, _ = exchange(address(served), request + b"Connection: close\r\n\r\n")
    got, headers, body = status_and_body(answer)
    assert (got, headers.get("content-length"), headers.get("connection"), body) == (status, "0", "close", b""), answer
    assert "x-request-id" not in headers  # the app never saw it


REACH_THE_APP = {
    "a path of 60,000 bytes": (404, head("GET", "/" + "p" * 60_000, "Connection: close")),
    "a query string over 4,096 bytes": (414, head("GET", "/running?x=" + "y" * 5000, "Connection: close")),
    "an invalid Host header": (400, b"GET /running HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n"),
    "invalid UTF-8 and NUL, percent-encoded, in the path": (404, head("GET", "/running%ff%00", "Connection: close")),
}


@pytest.mark.parametrize("case", REACH_THE_APP)
def test_the_same_kinds_of_error_that_reach_the_app_carry_a_message(served, case):  # noqa: F811
    status, request = REACH_THE_APP[case]
    answer, _ = exchange(address(served), request)
    assert message_of(answer, status)


def test_up_to_the_servers_limits_headers_are_the_apps_to_judge(served):  # noqa: F811
    """100 header fields, and a 400 KB header block (within granian's buffer), reach the app."""
    for request in (
        b"GET /running HTTP/1.1\r\n" + HOST + FIELDS_100 + b"Connection: close\r\n\r\n",
        b"GET /running HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 400_000 + b"\r\nConnection: close\r\n\r\n",
    ):
        answer, _ = exchange(address(served), request)
        assert status_and_body(answer)[0] == 200, answer[:200]
