"""`encounters-service serve` (granian, as production runs it) for the tests that speak raw HTTP/1.1
over a socket, with short timeouts so that the tests stay short, and the socket helpers they share."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import template_clone
from tests.helpers import SERVICE_ENV, Service, as_app, auth

IDLE_TIMEOUT_S = 3.0
BODY_TIMEOUT_S = 2.0
SLACK_S = 2.0  # a busy shared machine: the server may act this much later than its timeout


def start(conninfo: str, **env: str) -> Service:
    service = Service.start(
        {
            **SERVICE_ENV,
            "DATABASE_URL": as_app(conninfo),
            "HTTP_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT_S),
            "HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_S),
            **env,
        }
    )
    service.wait_until_running()
    return service


@pytest.fixture(scope="module")
def served_database(pg_server, template_conninfo) -> Iterator[str]:
    with template_clone(pg_server) as conninfo:
        yield conninfo


@pytest.fixture(scope="module")
def served(served_database) -> Iterator[Service]:
    service = start(served_database)
    try:
        yield service
    finally:
        service.stop()


def address(service: Service) -> tuple[str, int]:
    url = urlsplit(service.base_url)
    return url.hostname, url.port


def head(method: str, path: str, *lines: str, token: bool = True, json_type: bool = True) -> bytes:
    """A request's head: the request line, Host, the token and Content-Type: application/json
    unless told otherwise, `lines`, the blank line."""
    fields = ["Host: 127.0.0.1", *lines]
    if token:
        fields.append(f"Authorization: {auth()['Authorization']}")
    if json_type:
        fields.append("Content-Type: application/json")
    return f"{method} {path} HTTP/1.1\r\n{''.join(field + chr(13) + chr(10) for field in fields)}\r\n".encode()


def exchange(
    target: tuple[str, int],
    request: bytes,
    body_parts: Iterable[bytes] = (),
    *,
    pause_s: float = 0,
    half_close: bool = False,
) -> tuple[bytes, float]:
    """Sends `request`, then each of `body_parts` `pause_s` apart (stopping when the server answers
    or closes), then half-closes if told to; the whole answer (until the server closes) and the
    seconds from the end of `request` until it."""
    with socket.create_connection(target, timeout=30) as sock:
        sock.sendall(request)
        sent = time.monotonic()
        for part in body_parts:
            if select.select([sock], [], [], pause_s)[0]:
                break
            try:
                sock.sendall(part)
            except OSError:
                break
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := _recv(sock):
            answer += chunk
        return answer, time.monotonic() - sent


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def status_and_body(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """The status, the headers (names in lower case) and the body of one whole answer."""
    head_part, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head_part.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split(" ", 2)[1]), headers, body


def message_of(answer: bytes, status: int) -> str:
    got, _, body = status_and_body(answer)
    assert got == status, answer
    return json.loads(body)["message"]
