"""What every route shares: the caller's scope check, the strict query-string check, JSON pass-through."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

from litestar import Litestar, Request, Response
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie, MultiDict, MutableScopeHeaders
from litestar.enums import MediaType
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.response.base import ASGIResponse
from litestar.types import TypeEncodersMap

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


JSON = "application/json"
_BODILESS = frozenset({204, 304})  # and < 200: statuses whose answers carry no body (RFC 9110)


class JsonDocument(Response[bytes]):
    """Response(content=document, media_type="application/json", headers=…), answered the same
    (status, the same header lines in the same order, body) with less of Litestar's generality:
    its to_asgi_response merges headers, cookies and type encoders, and its ASGIResponse sets each
    header through a case-insensitive multidict that scans the list for every setdefault; for a
    get by id that was a twentieth of the request's CPU. Anything unusual (cookies, a background
    task, route headers, a status without a body) goes Litestar's own way (tests/api/test_responses.py)."""

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request,
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        status = self.status_code or status_code or 200
        plain = not (app or background or self.background or cookies or self.cookies or encoded_headers or headers)
        if not plain or is_head_response or status < 200 or status in _BODILESS or self.media_type != JSON:
            return super().to_asgi_response(
                app,
                request,
                background=background,
                cookies=cookies,
                encoded_headers=encoded_headers,
                headers=headers,
                is_head_response=is_head_response,
                media_type=media_type,
                status_code=status_code,
                type_encoders=type_encoders,
            )
        body = self.content
        # As ASGIResponse.__init__ makes them: the response's headers in order, names lower-cased,
        # then Content-Type and Content-Length unless the response set them.
        lines = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()]
        named = {name for name, _ in lines}
        if b"content-type" not in named:
            lines.append((b"content-type", b"application/json"))
        if b"content-length" not in named:
            lines.append((b"content-length", str(len(body)).encode("latin-1")))
        return _answer(status, lines, body, self.encoding)


def _answer(status: int, lines: list[tuple[bytes, bytes]], body: bytes, encoding: str) -> ASGIResponse:
    """The ASGIResponse that ASGIResponse(body=body, status_code=status, headers=…) would be, its
    header lines given as they are sent (its __init__ skipped; its __call__ answers)."""
    answer = ASGIResponse.__new__(ASGIResponse)
    raw = MutableScopeHeaders()
    raw.headers = lines
    answer.headers = raw
    answer.body = body
    answer.status_code = status
    answer.content_length = len(body)
    answer.background = None
    answer.encoding = encoding
    answer.is_head_response = False
    answer._encoded_cookies = ()
    return answer


def json_response(document: bytes | None, headers: dict[str, Any] | None = None) -> Response:
    """A JSON document built by PostgreSQL, passed through untouched."""
    return JsonDocument(content=document or b"null", media_type=JSON, headers=headers)


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


def header(request: Request, name: bytes) -> str | None:
    """The request's first `name` header (lower-case), as request.headers.get(name) has it, read
    from the ASGI scope: request.headers decodes every header into a case-insensitive multidict,
    which a get by id otherwise never needs (with its three look-ups, 2% of the request's CPU)."""
    for key, value in request.scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _declares_body(request: Request) -> bool:
    """Whether the headers announce a body (RFC 9112 6.3). Reading the body of every GET to find
    it empty took a round trip to the server's I/O thread: about a fifth of a get by id.
    (request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers,
    from the scope as `header` reads it.)"""
    length = None
    for key, value in request.scope["headers"]:
        key = key.lower()
        if key == b"transfer-encoding":
            return True
        if key == b"content-length" and length is None:
            length = value
    return length is not None and length != b"0"


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
