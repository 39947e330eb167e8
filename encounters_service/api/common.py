"""What every route shares: the caller's scope check, the strict query-string check, JSON pass-through."""

from __future__ import annotations

import inspect
import re

from litestar import Request, Response
from litestar.datastructures import MultiDict
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.handlers import BaseRouteHandler

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE, Caller, caller_from_request, require
from encounters_service.db import Database

# Handler arguments Litestar fills from the request itself rather than from the query string.
_NOT_QUERY = {"request", "data", "state", "headers", "cookies", "scope", "socket", "body", "caller", "db"}
IGNORE_UNKNOWN_QUERY = "ignore_unknown_query"  # route opt: accept (and ignore) any query parameter
FORM_BODY = "form_body"  # route opt: the body may be a form (application/x-www-form-urlencoded) instead of JSON
MAX_QUERY_BYTES = 4096  # the longest query string a caller sends is a few hundred bytes
REQUIRES = "requires"  # route opt: (scope, claim or None) that the caller's token must carry


def requires(scope: str, claim: str | None = None) -> dict[str, tuple[str, str | None]]:
    """Route opt: only a caller with `scope` (and, if given, a truthy `claim`) may call the route.
    Checked by `check_request`, first. (Not a Litestar guard: Litestar copies the route handler
    for every guard call, 7% of a get by id's CPU.)"""
    return {REQUIRES: (scope, claim)}


READ = requires(READ_SCOPE)
WRITE = requires(WRITE_SCOPE)
BEARER: list[dict[str, list[str]]] = [
    {"bearer": []}
]  # OpenAPI security requirement of the routes that require a scope (scheme: app.py)


def caller_of(request: Request) -> Caller:
    caller: Caller = request.state.caller
    return caller


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def json_response(document: bytes | None, headers: dict[str, str] | None = None) -> Response:
    """A JSON document built by PostgreSQL, passed through untouched."""
    return Response(content=document or b"null", media_type="application/json", headers=headers)


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


# The raw bytes of a request's path (before percent-decoding and Litestar's normalisation, which
# drops empty segments and a trailing slash) must spell its route's template: literal segments as
# written, uuid parameters as canonical UUIDs in any case (Python's UUID() also takes urn:uuid:,
# braces, no dashes, dashes anywhere), int parameters (versions) as decimal digits without a sign
# or leading zero, at most 18 (a bigint; int() also takes +1, 01, 1_0). A compiled pattern per
# template, made on its first request.
_PARAMETER = re.compile(r"\{(\w+):(\w+)\}")
_SEGMENT = {
    "uuid": rb"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}",
    "int": rb"(?:0|[1-9][0-9]{0,17})",
    "path": rb".*",
}
_route_spellings: dict[str, re.Pattern[bytes]] = {}


def _route_spelling(template: str, handler: BaseRouteHandler) -> re.Pattern[bytes]:
    types = dict(_PARAMETER.findall(" ".join(handler.paths)))
    segments = [
        _SEGMENT.get(types.get(part[1:-1], ""), rb"[^/]+") if part.startswith("{") else re.escape(part.encode())
        for part in template.split("/")
    ]
    return re.compile(b"/".join(segments) + rb"(?:\?|\Z)")  # a test client's raw_path may carry the query


def _refuse_non_canonical_path(request: Request) -> None:
    """404 unless the path is spelled exactly as its route (docs/api.md: a path id that is not a UUID → 404)."""
    scope = request.scope
    template = scope["path_template"]
    spelling = _route_spellings.get(template)
    if spelling is None:
        spelling = _route_spellings[template] = _route_spelling(template, request.route_handler)
    raw_path = scope.get("raw_path") or scope["path"].encode()  # raw_path is optional in ASGI
    if not spelling.match(raw_path):
        raise NotFoundException("no such route: spell the path as documented, ids as canonical UUIDs (8-4-4-4-12 hex)")


def _declares_body(request: Request) -> bool:
    """Whether the headers announce a body (RFC 9112 6.3). Reading the body of every GET to find
    it empty took a round trip to the server's I/O thread: about a fifth of a get by id."""
    headers = request.headers
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _refuse_repeated_query_parameters(params: MultiDict[str]) -> None:
    """A parameter given twice is a 400, not "last one wins" (docs/api.md: a repeated query parameter → 400)."""
    if len(params) == len(set(params)):  # len() counts every value, set() each name once
        return
    repeated = sorted(name for name in params if len(params.getall(name)) > 1)
    raise ValidationException(f"query parameter(s) given more than once: {', '.join(map(repr, repeated))}")


async def check_request(request: Request) -> None:
    """Before every handler: authenticate the caller and check what the route requires (401/403,
    the caller kept on the request); then refuse a query string over MAX_QUERY_BYTES (414), unknown
    or repeated query parameters, query values PostgreSQL text cannot hold (NUL), and a JSON body on
    a GET (400). First of all, a path not spelled as its route is a 404, as an unknown path is."""
    _refuse_non_canonical_path(request)
    handler = request.route_handler
    requirement = handler.opt.get(REQUIRES)
    if requirement is not None:
        scope, claim = requirement
        caller = caller_from_request(request)
        require(caller, scope, claim=claim)
        request.state.caller = caller
    query_string = request.scope["query_string"]
    if len(query_string) > MAX_QUERY_BYTES:
        raise HTTPException(status_code=414, detail=f"the query string is longer than {MAX_QUERY_BYTES} bytes")
    if query_string and not handler.opt.get(IGNORE_UNKNOWN_QUERY):
        params = request.query_params  # a new MultiDict on every access
        unknown = sorted(set(params) - _query_names(handler))
        if unknown:
            raise ValidationException(f"unknown query parameter(s): {', '.join(unknown)}")
        _refuse_repeated_query_parameters(params)
        for name, value in params.multi_items():
            if "\x00" in value:
                raise ValidationException(f"query parameter '{name}' must not contain NUL characters")
    if request.method == "GET" and _declares_body(request) and await request.body():
        raise ValidationException("a GET request takes no body")
