"""Guards between the HTTP server and the handlers. ASGI level (`guarded`): the request body's
deadline, a body cut short, HEAD on every GET route, one Allow header for OPTIONS and 405
(errors.allow_header). Litestar level (`check_content`): what a request body must be."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from encounters_service.api.common import FORM_BODY, _declares_body
from encounters_service.errors import allow_header

# The client's fault, answered with a message; "close" because the rest of the body, if any,
# will not be read (RFC 9110 15.5.9 asks it of a 408).
CLOSE = {"Connection": "close"}
BODY_TIMED_OUT = "the request body did not arrive within {} s; send it at once, after the headers"
BODY_CUT_SHORT = (
    "the request body ended before it was complete (shorter than its Content-Length, "
    "or a malformed or unfinished chunked encoding)"
)

NOT_JSON = "the request body must be JSON, sent with Content-Type: application/json (this one was {})"
ENCODED = "the request body must be sent without compression (Content-Encoding: identity); this one was {!r}"


def check_content(request: Request) -> None:
    """After check_request (so 401/403 come first): a request that carries a body must declare it
    JSON (application/json, or a +json type), or a form on a route with the FORM_BODY opt, and
    send it uncompressed, else 415. (A GET with a body was refused already.)"""
    if request.method == "GET" or not _declares_body(request):
        return
    headers = request.headers
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    json_type = media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    form = media_type == "application/x-www-form-urlencoded" and request.route_handler.opt.get(FORM_BODY)
    if not (json_type or form):
        raise HTTPException(status_code=415, detail=NOT_JSON.format(repr(media_type) if media_type else "not typed"))
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise HTTPException(status_code=415, detail=ENCODED.format(encoding), headers={"Accept-Encoding": "identity"})


def guarded(app: ASGIApp, *, body_timeout_s: float, allowed_methods: Mapping[str, Iterable[str]]) -> ASGIApp:
    """`app` behind the guards. `allowed_methods`: each route's methods, by its path template (the
    form Litestar puts in the scope).

    Measured cost (README Reliability): 1-3 us for a request without a body, 3-6 us more for one
    that reads a body (its timer); HEAD and OPTIONS requests also wrap `send`."""
    allow = {path: allow_header(methods) for path, methods in allowed_methods.items()}

    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = scope["method"]
        if method == "HEAD":  # the GET, with its headers (Content-Length included) and no body
            scope = {**scope, "method": "GET"}
            send = _without_body(send)
        elif method == "OPTIONS":  # Litestar's own Allow leaves out methods of merged routes
            send = _with_allow(send, scope, allow)
        await app(scope, _body_guard(receive, body_timeout_s), send)

    return guard


def _body_guard(receive: Receive, timeout_s: float) -> Receive:
    """`receive`, with the whole body due within `timeout_s` of its first read (else 408), and a
    disconnect before the body's end answered 400 (the client may only have half-closed).

    One timer per request that reads a body; when it fires during a read it cancels the request's
    task, and the read turns that into the 408. (`asyncio.timeout` around each read did the same
    at two to three times the cost, for every read.)"""
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[Any] | None = None
    timed_out = reading = complete = False

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        if reading and task:
            task.cancel()

    async def receive_body() -> ReceiveMessage:
        nonlocal timer, task, reading, complete
        if complete:  # after the body, only the disconnect is left to wait for: no deadline
            return await receive()
        if timer is None:
            loop, task = asyncio.get_running_loop(), asyncio.current_task()
            timer = loop.call_at(loop.time() + timeout_s, expire)
        if not timed_out:
            reading = True
            try:
                message = await receive()
            except asyncio.CancelledError:
                if not timed_out or (task and task.uncancel() > 0):  # not (only) ours
                    raise
            finally:
                reading = False
        if timed_out:
            raise HTTPException(status_code=408, detail=BODY_TIMED_OUT.format(f"{timeout_s:g}"), headers=CLOSE)
        complete = message["type"] == "http.disconnect" or not message.get("more_body", False)
        if complete:
            timer.cancel()
        if message["type"] == "http.disconnect":
            raise HTTPException(status_code=400, detail=BODY_CUT_SHORT, headers=CLOSE)
        return message

    return receive_body


def _without_body(send: Send) -> Send:
    async def send_headers_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            empty: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}
            message = empty
        await send(message)

    return send_headers_only


def _with_allow(send: Send, scope: Scope, allow: Mapping[str, str]) -> Send:
    async def send_with_allow(message: Message) -> None:
        # Litestar puts the matched route's template in the scope before it answers.
        header = allow.get(scope.get("path_template", ""))
        if message["type"] == "http.response.start" and header:
            kept = [(name, value) for name, value in message.get("headers", []) if name.lower() != b"allow"]
            started: HTTPResponseStartEvent = {**message, "headers": [*kept, (b"allow", header.encode())]}
            message = started
        await send(message)

    return send_with_allow
