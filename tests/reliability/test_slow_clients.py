"""Idle and slow connections against `encounters-service serve` (granian, as production runs it), on
loopback: thousands of silent sockets do not hold up another client, and every kind of slowness —
silence, slow headers, headers without their body, a body at a byte a second — is cut off after
HTTP_IDLE_TIMEOUT_SECONDS or HTTP_BODY_TIMEOUT_SECONDS (short ones here, to keep the test short).
"""

from __future__ import annotations

import asyncio
import math
import os
import select
import socket
import statistics
import time
from pathlib import Path

import httpx
import pytest
from litestar.exceptions import HTTPException

from encounters_service.guards import guarded
from tests.helpers import Service, auth
from tests.reliability.raw_http import (
    BODY_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    SLACK_S,
    address,
    exchange,
    head,
    message_of,
    served,  # noqa: F401 (a fixture)
    served_database,  # noqa: F401 (a fixture)
    start,
)

IDLE_SOCKETS = 2000
LATEST = "/dhos/v2/encounter/latest?patient_id=00000000-0000-0000-0000-000000000001"  # one query: 404


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


def test_2000_idle_sockets_leave_another_client_answered_within_a_second_and_are_closed(served):  # noqa: F811
    service = served
    target = address(service)
    before, headers = server_sockets(service), auth()
    opened = time.monotonic()  # the first of them: the server closes each one the idle timeout after its accept
    idle = open_idle_sockets(target, IDLE_SOCKETS)
    try:
        latencies, statuses = [], []
        # Another client, a new connection per request (what a starved listener would refuse first),
        # and one keep-alive client: for as long as every idle socket is open.
        one_shot = httpx.Limits(max_keepalive_connections=0)
        with (
            httpx.Client(base_url=service.base_url, headers=headers, timeout=10) as keep_alive,
            httpx.Client(base_url=service.base_url, headers=headers, timeout=10, limits=one_shot) as new_connection,
        ):
            while time.monotonic() - opened < IDLE_TIMEOUT_S - 0.5:
                for client in (new_connection, keep_alive):
                    started = time.monotonic()
                    response = client.get(LATEST)
                    latencies.append(time.monotonic() - started)
                    statuses.append(response.status_code)
                time.sleep(0.02)
        held = server_sockets(service) - before
        still_open = IDLE_SOCKETS - closed_by_server(idle)
        p99 = sorted(latencies)[math.ceil(0.99 * len(latencies)) - 1]  # nearest rank
        print(
            f"\n{IDLE_SOCKETS} idle sockets, {held} held by the server; {len(latencies)} requests of another client:"
            f" p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms,"
            f" max {max(latencies) * 1000:.1f} ms"
        )
        assert set(statuses) == {404}, statuses
        assert max(latencies) < 1.0
        assert still_open == IDLE_SOCKETS
        assert held >= IDLE_SOCKETS - 20  # accepted, all of them (its other sockets come and go)

        # Then the server closes them, once they have been silent for the idle timeout.
        deadline = opened + IDLE_TIMEOUT_S + SLACK_S
        while closed_by_server(idle) < IDLE_SOCKETS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert closed_by_server(idle) == IDLE_SOCKETS
        print(f"all closed by the server {time.monotonic() - opened:.1f} s after they connected")
    finally:
        for sock in idle:
            sock.close()


def test_slow_headers_and_idle_keep_alive_connections_are_closed_after_the_idle_timeout(served):  # noqa: F811
    target = address(served)
    request = head("GET", "/running", token=False, json_type=False)
    answer, seconds = exchange(target, request[:1], [bytes([byte]) for byte in request[1:]], pause_s=0.5)
    assert answer == b"", answer  # hyper closes without an answer
    assert IDLE_TIMEOUT_S - 0.5 < seconds < IDLE_TIMEOUT_S + SLACK_S

    with socket.create_connection(target, timeout=30) as sock:  # one answer, then silence
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        assert sock.recv(65536) == b""
        assert IDLE_TIMEOUT_S - 0.5 < time.monotonic() - answered < IDLE_TIMEOUT_S + SLACK_S


PATIENTS = "/dhos/v1/encounter/patients"


@pytest.mark.parametrize(
    ("request_head", "body_parts"),
    [
        (head("POST", PATIENTS, "Content-Length: 40"), []),
        (head("POST", PATIENTS, "Content-Length: 40"), [b"["] + [b" "] * 38 + [b"]"]),
        (
            head("POST", PATIENTS, "Transfer-Encoding: chunked"),
            [b"1\r\n[\r\n"] + [b"1\r\n \r\n"] * 30 + [b"1\r\n]\r\n0\r\n\r\n"],
        ),
    ],
    ids=["headers, then no body", "a byte a second", "a chunk a second"],
)
def test_a_body_that_is_not_all_there_within_the_body_timeout_is_answered_408(served, request_head, body_parts):  # noqa: F811
    answer, seconds = exchange(address(served), request_head, body_parts, pause_s=1.0)
    assert f"within {BODY_TIMEOUT_S:g} s" in message_of(answer, 408)
    assert BODY_TIMEOUT_S - 0.5 < seconds < BODY_TIMEOUT_S + SLACK_S


def test_over_the_connection_limit_new_connections_wait_for_idle_timeouts_not_for_ever(served_database):  # noqa: F811
    """HTTP_MAX_CONNECTIONS reached by silent sockets: granian stops accepting, and a new connection
    waits in the listen queue while the server closes the silent ones it holds, a batch per idle
    timeout; then it is answered. Each worker has its own queue (SO_REUSEPORT) and the kernel
    spreads connections over them unevenly: at worst all the sockets are ahead of it in one."""
    sockets, per_worker = 300, 100
    service = start(served_database, HTTP_MAX_CONNECTIONS=str(2 * per_worker), WEB_CONCURRENCY="2")
    try:
        idle = open_idle_sockets(address(service), sockets)
        opened = time.monotonic()
        response = httpx.get(service.base_url + LATEST, headers=auth(), timeout=30)
        waited = time.monotonic() - opened
        print(
            f"\n{sockets} silent sockets against a limit of {2 * per_worker}:"
            f" another client answered after {waited:.1f} s"
        )
        assert response.status_code == 404
        assert waited < math.ceil(sockets / per_worker) * IDLE_TIMEOUT_S + SLACK_S
        for sock in idle:
            sock.close()
    finally:
        service.stop()


def test_the_body_deadline_is_the_guards_own_whatever_the_server():
    """The same deadline with any ASGI server's receive (here a coroutine that never returns, as
    uvicorn's would for a body that does not come): a 408 after the timeout, the request's task left
    uncancelled; a cancellation from elsewhere still goes through."""

    async def never() -> dict:
        await asyncio.sleep(3600)

    async def reader(scope, receive, send) -> None:
        await receive()

    app = guarded(reader, body_timeout_s=0.2, allowed_methods={})
    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}

    async def timed_out() -> tuple[int, float, int]:
        started = time.monotonic()
        with pytest.raises(HTTPException) as refused:
            await app(scope, never, None)
        return refused.value.status_code, time.monotonic() - started, asyncio.current_task().cancelling()

    status, seconds, cancelling = asyncio.run(timed_out())
    assert (status, cancelling) == (408, 0) and 0.2 <= seconds < 0.2 + SLACK_S

    async def cancelled_from_elsewhere() -> None:
        task = asyncio.create_task(app(scope, never, None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_from_elsewhere())
