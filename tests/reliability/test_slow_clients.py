"""Idle and slow connections against `encounters-service serve` (granian, as production runs it), on
loopback: thousands of silent sockets do not hold up another client, and every kind of slowness —
silence, slow headers, headers without their body, a body at a byte a second — is cut off after
HTTP_IDLE_TIMEOUT_SECONDS or HTTP_BODY_TIMEOUT_SECONDS (short ones here, to keep the test short).
"""

from __future__ import annotations

import json
import math
import os
import select
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import template_clone
from tests.helpers import SERVICE_ENV, Service, auth

IDLE_SOCKETS = 2000
IDLE_TIMEOUT_S = 3.0
BODY_TIMEOUT_S = 2.0
SLACK_S = 2.0  # a busy shared machine: the server may act this much later than its timeout
LATEST = "/dhos/v2/encounter/latest?patient_id=00000000-0000-0000-0000-000000000001"  # one query: 404


def start(conninfo: str, **env: str) -> Service:
    service = Service.start(
        {
            **SERVICE_ENV,
            "DATABASE_URL": conninfo,
            "HTTP_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT_S),
            "HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_S),
            **env,
        }
    )
    service.wait_until_running()
    return service


@pytest.fixture(scope="module")
def database(pg_server, template_conninfo) -> Iterator[str]:
    with template_clone(pg_server) as conninfo:
        yield conninfo


@pytest.fixture(scope="module")
def service(database) -> Iterator[Service]:
    service = start(database)
    try:
        yield service
    finally:
        service.stop()


def address(service: Service) -> tuple[str, int]:
    url = urlsplit(service.base_url)
    return url.hostname, url.port


def open_idle_sockets(target: tuple[str, int], count: int, seconds: float = 20) -> list[socket.socket]:
    """`count` connected sockets that send nothing (the kernel completes the handshake even while
    the server has not accepted them yet)."""
    sockets, poller = [], select.poll()
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(target)
        sockets.append(sock)
        poller.register(sock, select.POLLOUT)
    pending, deadline = count, time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            poller.unregister(fd)
            pending -= 1
    assert not pending, f"{pending} of {count} sockets did not connect"
    return sockets


def closed_by_server(sockets: list[socket.socket]) -> int:
    """How many of `sockets` the server has closed (read end-of-file or a reset)."""
    closed = 0
    for sock in sockets:
        try:
            if sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def server_sockets(service: Service) -> int:
    """Sockets the service's processes (the main one and its workers) hold open."""
    pid = service.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(_is_socket(fd) for process in (pid, *map(int, children)) for fd in Path(f"/proc/{process}/fd").iterdir())


def _is_socket(fd: Path) -> bool:
    try:
        return os.readlink(fd).startswith("socket:")
    except FileNotFoundError:  # closed meanwhile
        return False


def exchange(target: tuple[str, int], head: bytes, body_bytes: list[bytes] = (), pause_s: float = 0) -> tuple[bytes, float]:
    """Sends `head`, then each of `body_bytes` `pause_s` apart (stopping when the server answers
    or closes); the whole answer and the seconds from the end of `head` until it."""
    with socket.create_connection(target, timeout=30) as sock:
        sock.sendall(head)
        sent = time.monotonic()
        for chunk in body_bytes:
            if select.select([sock], [], [], pause_s)[0]:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
        answer = b""
        while chunk := _recv(sock):
            answer += chunk
        return answer, time.monotonic() - sent


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def status_and_body(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_2000_idle_sockets_leave_another_client_answered_within_a_second_and_are_closed(service):
    target = address(service)
    before, headers = server_sockets(service), auth()
    opened = time.monotonic()  # the first of them: the server closes each one the idle timeout after its accept
    idle = open_idle_sockets(target, IDLE_SOCKETS)
    try:
        latencies, statuses = [], []
        # Another client, a new connection per request (what a starved listener would refuse first),
        # and one keep-alive client: for as long as every idle socket is open.
        with httpx.Client(base_url=service.base_url, headers=headers, timeout=10) as keep_alive:
            while time.monotonic() - opened < IDLE_TIMEOUT_S - 0.5:
                for client in (None, keep_alive):
                    started = time.monotonic()
                    response = httpx.get(service.base_url + LATEST, headers=headers, timeout=10) if client is None else client.get(LATEST)
                    latencies.append(time.monotonic() - started)
                    statuses.append(response.status_code)
                time.sleep(0.02)
        held = server_sockets(service) - before
        still_open = IDLE_SOCKETS - closed_by_server(idle)
        p99 = sorted(latencies)[math.ceil(0.99 * len(latencies)) - 1]  # nearest rank
        print(f"\n{IDLE_SOCKETS} idle sockets, {held} held by the server; {len(latencies)} requests of another client:"
              f" p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
        assert set(statuses) == {404}, statuses
        assert max(latencies) < 1.0
        assert still_open == IDLE_SOCKETS and held >= IDLE_SOCKETS

        # Then the server closes them, once they have been silent for the idle timeout.
        deadline = opened + IDLE_TIMEOUT_S + SLACK_S
        while closed_by_server(idle) < IDLE_SOCKETS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert closed_by_server(idle) == IDLE_SOCKETS
        print(f"all closed by the server {time.monotonic() - opened:.1f} s after they connected")
    finally:
        for sock in idle:
            sock.close()


def test_slow_headers_and_idle_keep_alive_connections_are_closed_after_the_idle_timeout(service):
    target = address(service)
    head = f"GET /running HTTP/1.1\r\nHost: {target[0]}\r\n\r\n".encode()
    answer, seconds = exchange(target, b"G", [bytes([byte]) for byte in head[1:]], pause_s=0.5)
    assert answer in (b"", b"HTTP/1.1 408 Request Timeout") or answer.startswith(b"HTTP/1.1 408"), answer
    assert IDLE_TIMEOUT_S - 0.5 < seconds < IDLE_TIMEOUT_S + SLACK_S

    with socket.create_connection(target, timeout=30) as sock:  # one answer, then silence
        sock.sendall(head)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        assert sock.recv(65536) == b""
        assert IDLE_TIMEOUT_S - 0.5 < time.monotonic() - answered < IDLE_TIMEOUT_S + SLACK_S


@pytest.mark.parametrize(
    ("name", "head", "body"),
    [
        ("headers, then no body", b"POST /dhos/v1/encounter/patients HTTP/1.1\r\nContent-Length: 40\r\n", []),
        ("a byte a second", b"POST /dhos/v1/encounter/patients HTTP/1.1\r\nContent-Length: 40\r\n", [b"["] + [b" "] * 38 + [b"]"]),
        ("chunks, a byte a second", b"POST /dhos/v1/encounter/patients HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
         [b"1\r\n[\r\n"] + [b"1\r\n \r\n"] * 30 + [b"1\r\n]\r\n0\r\n\r\n"]),
    ],
)
def test_a_body_that_is_not_all_there_within_the_body_timeout_is_answered_408(service, name, head, body):
    target = address(service)
    headers = f"Host: {target[0]}\r\nContent-Type: application/json\r\nAuthorization: {auth()['Authorization']}\r\n\r\n"
    answer, seconds = exchange(target, head + headers.encode(), body, pause_s=1.0)
    status, document = status_and_body(answer)
    assert status == 408, answer
    assert f"within {BODY_TIMEOUT_S:g} s" in document["message"]
    assert BODY_TIMEOUT_S - 0.5 < seconds < BODY_TIMEOUT_S + SLACK_S, name


def test_over_the_connection_limit_new_connections_wait_at_most_about_the_idle_timeout(database):
    """HTTP_MAX_CONNECTIONS reached by silent sockets: a new connection waits in the listen queue
    until the server closes silent ones (the idle timeout), then it is answered; it is not starved
    for as long as the sockets are held."""
    service = start(database, HTTP_MAX_CONNECTIONS="200", WEB_CONCURRENCY="2")
    try:
        idle = open_idle_sockets(address(service), 400)
        opened = time.monotonic()
        response = httpx.get(service.base_url + LATEST, headers=auth(), timeout=IDLE_TIMEOUT_S * 3 + SLACK_S)
        waited = time.monotonic() - opened
        print(f"\n400 silent sockets against a limit of 200: another client answered after {waited:.1f} s")
        assert response.status_code == 404
        assert waited < 2 * IDLE_TIMEOUT_S + SLACK_S  # the listen queue drains one idle timeout at a time
        for sock in idle:
            sock.close()
    finally:
        service.stop()
