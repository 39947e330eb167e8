"""What every route shares: auth guards, the strict query-string check, JSON pass-through."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import BaseRouteHandler

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE, Caller, caller_from_request, require
from encounters_service.db import Database

# Handler arguments Litestar fills from the request itself rather than from the query string.
_NOT_QUERY = {"request", "data", "state", "headers", "cookies", "scope", "socket", "body", "caller", "db"}
IGNORE_UNKNOWN_QUERY = "ignore_unknown_query"  # route opt: accept (and ignore) any query parameter
MAX_QUERY_BYTES = 4096  # the longest query string a caller sends is a few hundred bytes


def guard(scope: str, claim: str | None = None) -> Callable:
    """A Litestar guard: the caller needs `scope` (and `claim`); the caller is kept on the request."""

    # async although it never awaits: Litestar runs a synchronous guard in a thread pool.
    async def check(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        caller = caller_from_request(connection)
        require(caller, scope, claim=claim)
        connection.state.caller = caller

    return check


READ = [guard(READ_SCOPE)]
WRITE = [guard(WRITE_SCOPE)]
BEARER = [{"bearer": []}]  # OpenAPI security requirement of the guarded routes (scheme: app.py)


def caller_of(request: Request) -> Caller:
    return request.state.caller


def database(request: Request) -> Database:
    return request.app.state.db


def json_response(document: bytes | None) -> Response:
    """A JSON document built by PostgreSQL, passed through untouched."""
    return Response(content=document or b"null", media_type="application/json")


def _query_names(handler: BaseRouteHandler) -> frozenset[str]:
    names = handler.opt.get("_query_names")
    if names is None:
        parameters = inspect.signature(handler.fn).parameters
        path_names = set(handler.paths and _path_parameter_names(handler))
        names = frozenset(parameters) - _NOT_QUERY - path_names
        handler.opt["_query_names"] = names
    return names


def _path_parameter_names(handler: BaseRouteHandler) -> set[str]:
    names = set()
    for path in handler.paths:
        for part in path.split("/"):
            if part.startswith("{") and part.endswith("}"):
                names.add(part[1:-1].split(":")[0])
    return names


def _declares_body(request: Request) -> bool:
    """Whether the headers announce a body (RFC 9112 6.3). Reading the body of every GET to find
    it empty took a round trip to the server's I/O thread: about a fifth of a get by id."""
    headers = request.headers
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


async def check_request_shape(request: Request) -> None:
    """Before every handler: refuse a query string over MAX_QUERY_BYTES (414), unknown query
    parameters, query values PostgreSQL text cannot hold (NUL), and a JSON body on a GET (400)."""
    query_string = request.scope["query_string"]
    if len(query_string) > MAX_QUERY_BYTES:
        raise HTTPException(status_code=414, detail=f"the query string is longer than {MAX_QUERY_BYTES} bytes")
    handler = request.route_handler
    if query_string and not handler.opt.get(IGNORE_UNKNOWN_QUERY):
        unknown = sorted(set(request.query_params) - _query_names(handler))
        if unknown:
            raise ValidationException(f"unknown query parameter(s): {', '.join(unknown)}")
        for name, value in request.query_params.multi_items():
            if "\x00" in value:
                raise ValidationException(f"query parameter '{name}' must not contain NUL characters")
    if request.method == "GET" and _declares_body(request) and await request.body():
        raise ValidationException("a GET request takes no body")
