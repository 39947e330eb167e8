"""A body cut short or malformed is the client's fault: `encounters-service serve` (granian, as
production runs it) answers 400 with a message when the client is still there to read it, and
logs it as a 400, never as a server error (it was a 500 "client disconnected prematurely")."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from encounters_service.guards import BODY_CUT_SHORT
from tests.reliability.raw_http import (
    address,
    exchange,
    head,
    message_of,
    served,  # noqa: F401 (a fixture)
    served_database,  # noqa: F401 (a fixture)
)

ROUTES = [
    ("POST", "/dhos/v2/encounter"),
    ("POST", "/dhos/v1/encounter/patients"),
    ("PATCH", f"/dhos/v1/encounter/{uuid.uuid4()}"),
    ("POST", "/dhos/v1/encounter/merge"),
]
CUT_SHORT = {
    "shorter than its Content-Length": (["Content-Length: 100"], b'{"patient_uuid": "'),
    "an invalid chunk size": (["Transfer-Encoding: chunked"], b"zz\r\n{}\r\n0\r\n\r\n"),
    "a chunk cut short": (["Transfer-Encoding: chunked"], b'40\r\n{"patient_uuid": "'),
    "no last chunk": (["Transfer-Encoding: chunked"], b"2\r\n{}\r\n"),
}


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("case", CUT_SHORT)
def test_a_body_cut_short_then_half_closed_is_400_with_a_message(served, method, path, case):  # noqa: F811
    fields, body = CUT_SHORT[case]
    answer, _ = exchange(address(served), head(method, path, *fields) + body, half_close=True)
    assert message_of(answer, 400) == BODY_CUT_SHORT


def test_a_client_gone_mid_body_leaves_no_server_error_in_the_log(served):  # noqa: F811
    fields, body = CUT_SHORT["shorter than its Content-Length"]
    for method, path in ROUTES:
        with socket.create_connection(address(served)) as sock:
            sock.sendall(head(method, path, *fields) + body)
    time.sleep(0.5)  # the server sees each disconnect and answers into the void
    requests = [line for line in served.output().splitlines() if "encounters_service.requests" in line]
    for method, path in ROUTES:
        assert any(f"{method} {path} 400 " in line for line in requests), requests
    assert not [line for line in served.output().splitlines() if " ERROR " in line or " 500 " in line]
