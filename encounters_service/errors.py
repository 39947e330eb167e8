"""The one place that turns failures into `{"message": …}` responses with the right status (on
/fhir paths, the same message as a FHIR OperationOutcome)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
import psycopg.errors
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, MethodNotAllowedException, ValidationException
from litestar.types import ExceptionHandlersMap
from psycopg_pool import PoolTimeout

from encounters_service.auth import AuthError
from encounters_service.db import RETRIES
from encounters_service.metrics import UNAVAILABLE as UNAVAILABLE_ANSWERS

log = logging.getLogger("encounters_service.errors")

# SQLSTATEs raised by our functions (sql/functions): the database's message is the caller's message.
SQLSTATE_STATUS = {
    "EN400": 400,
    "EN403": 403,
    "EN404": 404,
    "EN409": 409,
    "EN412": 412,  # If-Match names another version of the encounter
    "EN422": 422,
    "23505": 409,  # unique_violation: a partial unique index refused a duplicate
    "23503": 422,  # foreign_key_violation: refers to something that does not exist
    "23514": 400,  # check_violation
    "23502": 400,  # not_null_violation
    "57014": 503,  # query_canceled: statement_timeout
    "40001": 503,  # serialization_failure, after db.RETRIES retries
    "40P01": 503,  # deadlock_detected, after db.RETRIES retries
}
SQLSTATE_CLASS_STATUS = {
    "22": 400,  # data exception: bad value for its type
    "08": 503,  # connection exception
    "57": 503,  # operator intervention: server shutting down
    "53": 503,  # insufficient resources
    "54": 400,  # program limit exceeded: e.g. a value too large for an index entry
}
UNIQUE_INDEX_MESSAGES = {
    "encounter_live_epr_id_key": "epr_encounter_id is already used by another encounter that is not deleted",
    "encounter_one_open_local_key": "the patient already has an open local encounter",
}
UNAVAILABLE = "the database is unavailable, try again shortly"
TIMED_OUT = "the request took longer than the database allows (statement timeout); try again or ask for less"
TOO_LARGE = "a value in the request is too large to store"
CONFLICTED = (
    "the request conflicted with concurrent changes of the same encounters (a deadlock or a serialization"
    f" failure in the database) {RETRIES + 1} times and was not applied; try again"
)
# 503 answers that say more than "unavailable": the database is up, this request did not get through.
RETRY_LATER = {  # SQLSTATE: (message, cause counted in encounters_http_unavailable_total)
    "57014": (TIMED_OUT, "statement_timeout"),
    "40001": (CONFLICTED, "conflict"),
    "40P01": (CONFLICTED, "conflict"),
}
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response({"message": message}, status_code=status, media_type=MediaType.JSON, headers=headers)


def _validation_message(exc: ValidationException) -> str:
    details = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for detail in details:
        if not (isinstance(detail, dict) and detail.get("message")):
            continue
        message, key = detail["message"], detail.get("key")
        source = getattr(detail.get("source"), "value", detail.get("source"))  # ParamType.QUERY -> "query"
        if source == "body":
            # Litestar reports a missing body as a KeyError on the body parameter's name.
            parts.append(
                "a JSON request body is required" if message == f"'{key}'" else f"invalid request body: {message}"
            )
        else:
            parts.append(f"{message} ({source or 'input'} parameter '{key}')" if key else message)
    return "; ".join(parts) or str(exc.detail)


def allow_header(methods: Iterable[str]) -> str:
    """A route's Allow header, the same on OPTIONS and 405: its methods, HEAD wherever GET is
    (guards.py answers it) and OPTIONS, in one order."""
    allowed = {method.strip().upper() for method in methods if method.strip()} | {"OPTIONS"}
    if "GET" in allowed:
        allowed.add("HEAD")
    known = {method: rank for rank, method in enumerate(METHOD_ORDER)}
    return ", ".join(sorted(allowed, key=lambda method: (known.get(method, len(known)), method)))


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ValidationException):
        return error_response(400, _validation_message(exc))
    headers = exc.headers
    if isinstance(exc, MethodNotAllowedException):  # Litestar lists the route's methods, unordered
        headers = {"Allow": allow_header((exc.headers or {}).get("allow", "").split(","))}
    return error_response(exc.status_code, str(exc.detail), headers=headers)


def handle_auth_error(request: Request, exc: AuthError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return error_response(exc.status_code, exc.message, headers)


def handle_database_error(request: Request, exc: psycopg.Error) -> Response:
    state = exc.sqlstate or ""
    status = SQLSTATE_STATUS.get(state) or SQLSTATE_CLASS_STATUS.get(state[:2])
    if isinstance(exc, psycopg.OperationalError) and status is None:
        status = 503
    if status is None:
        return handle_unexpected(request, exc)
    if state in RETRY_LATER:
        message, cause = RETRY_LATER[state]
        log.warning("answered 503 (SQLSTATE %s): %s", state, message)
        UNAVAILABLE_ANSWERS.labels(cause).inc()
        return error_response(503, message, {"Retry-After": "1"})
    if status == 503:
        log.warning("database unavailable: %s", type(exc).__name__)
        UNAVAILABLE_ANSWERS.labels("database_unavailable").inc()
        return error_response(503, UNAVAILABLE, {"Retry-After": "1"})
    if state.startswith("54"):  # the database's message names internals (an index)
        return error_response(400, TOO_LARGE)
    diag = exc.diag
    message = UNIQUE_INDEX_MESSAGES.get(diag.constraint_name or "") or diag.message_primary or str(exc)
    return error_response(status, message)


def handle_pool_timeout(request: Request, exc: PoolTimeout) -> Response:
    log.warning("no database connection within the pool timeout")
    UNAVAILABLE_ANSWERS.labels("pool_timeout").inc()
    return error_response(503, UNAVAILABLE, {"Retry-After": "1"})


def handle_unexpected(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id", "-")
    log.exception("unexpected error (request %s)", request_id)
    return error_response(500, f"internal error; quote request id {request_id}")


FHIR_PATHS = "/fhir/"
FHIR_JSON = "application/fhir+json"
# OperationOutcome.issue.code (FHIR value set issue-type) of each status a /fhir route can answer.
OUTCOME_CODES = {
    400: "invalid",
    401: "login",
    403: "security",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    408: "timeout",
    410: "deleted",
    413: "too-costly",
    414: "too-long",
    415: "not-supported",
    422: "processing",
    503: "transient",
}


def operation_outcome(response: Response) -> Response:
    """An error response of this module as a FHIR OperationOutcome: the same status, message and headers."""
    message = response.content["message"] if isinstance(response.content, dict) else str(response.content)
    status = response.status_code or 500
    issue = {"severity": "error", "code": OUTCOME_CODES.get(status, "exception"), "diagnostics": message}
    return Response(
        {"resourceType": "OperationOutcome", "issue": [issue]},
        status_code=status,
        media_type=FHIR_JSON,
        headers=response.headers,
    )


def _fhir_aware(handler: Callable[[Request, Any], Response]) -> Callable[[Request, Any], Response]:
    def handle(request: Request, exc: Any) -> Response:
        response = handler(request, exc)
        return operation_outcome(response) if request.scope["path"].startswith(FHIR_PATHS) else response

    return handle


_HANDLERS: dict[type[Exception], Callable[[Request, Any], Response]] = {
    HTTPException: handle_http_exception,
    AuthError: handle_auth_error,
    PoolTimeout: handle_pool_timeout,
    psycopg.Error: handle_database_error,
    Exception: handle_unexpected,
}
EXCEPTION_HANDLERS: ExceptionHandlersMap = {exception: _fhir_aware(handler) for exception, handler in _HANDLERS.items()}
