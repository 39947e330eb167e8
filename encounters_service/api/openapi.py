"""The OpenAPI document of each route, taken from the msgspec types that decode and describe it.

Routes read their body raw and decode it strictly with msgspec (models.decode), and pass on JSON
that PostgreSQL built, so Litestar sees neither their request bodies nor their responses.
`documented(...)` gives a route an Operation class that fills both in from msgspec's own JSON
Schema of those types — the decoder's rules exactly: required fields, formats, patterns, no
unknown fields — and lists the error statuses the route can answer, each with the `{"message"}` body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import UnionType
from typing import Any, Union, get_args, get_origin

import msgspec
from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)

from encounters_service.models import ErrorBody

JSON = "application/json"
_STRING = Schema(type=OpenAPIType.STRING)
_HEADERS = {
    304: {"ETag": 'the version of the encounter, quoted: "3"'},
    401: {"WWW-Authenticate": "Bearer"},
    503: {"Retry-After": "seconds to wait before trying again"},
}
ETAG = {"ETag": 'the version of the encounter, quoted: "3" (1 at creation, 1 more for each change)'}
# Request headers of the conditional routes (encounters_service/etags.py reads them).
IF_NONE_MATCH = {"If-None-Match": 'ETags such as "3", or *: 304 with no body when one names the encounter\'s version'}
IF_MATCH = {"If-Match": 'ETags such as "3", or * (any version): 412 and nothing written unless one names the version'}


def json_schema(shape: Any) -> dict[str, Any]:
    """JSON Schema of a msgspec type, self-contained (definitions inlined).

    msgspec refuses unions of several Structs (it could not decode them); as documentation they
    are fine and become `oneOf`, also inside list[...] and dict[...].
    """
    origin, args = get_origin(shape), get_args(shape)
    if origin in (Union, UnionType) and any(isinstance(arg, type) and issubclass(arg, msgspec.Struct) for arg in args):
        return {"oneOf": [json_schema(arg) for arg in args]}
    if origin is list:
        return {"type": "array", "items": json_schema(args[0])}
    if origin is dict:
        return {"type": "object", "propertyNames": json_schema(args[0]), "additionalProperties": json_schema(args[1])}
    (schema,), definitions = msgspec.json.schema_components([shape], ref_template="{name}")
    inlined: dict[str, Any] = _inline(schema, definitions)
    return inlined


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(definitions[node["$ref"]], definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node


def documented(
    ok: Any,
    *,
    body: Any = None,
    errors: Iterable[int] = (),
    answer_headers: Mapping[str, str] | None = None,
    request_headers: Mapping[str, str] | None = None,
) -> type[Operation]:
    """An Operation class for a route that answers `ok` (a msgspec type) and, if given, takes `body`,
    with optional headers of its success answer and of its request ({name: description}; e.g.
    ETAG, the encounter's version). A 304 has no body.

    Error statuses: `errors`, and those every route of its kind can answer: 400 (an unknown query
    parameter) and 414 (a query string too long), 404 for a path id, 408/413/415 with a body (too slow,
    too large, not JSON: encounters_service/guards.py), 401/403/503
    for a /dhos route (token, database).
    """
    ok_schema = json_schema(ok)
    body_schema = None if body is None else json_schema(body)
    error_schema = json_schema(ErrorBody)

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            if body_schema is not None:
                self.request_body = RequestBody(content=_json(body_schema), required=True)
            headers_in = [
                Parameter(name=name, param_in=ParamType.HEADER, required=False, description=text, schema=_STRING)
                for name, text in (request_headers or {}).items()
            ]
            self.parameters = [_not_null(parameter) for parameter in self.parameters or []] + headers_in or None
            statuses = {400, 414, *errors}
            if self.security:
                statuses |= {401, 403, 503}
            if any(parameter.param_in == "path" for parameter in self.parameters or []):
                statuses.add(404)
            if self.request_body is not None:
                statuses |= {408, 413, 415}
            success = next(status for status in self.responses if status.startswith("2"))
            description = self.responses[success].description  # Litestar's OpenAPIResponse, never a Reference
            self.responses = {
                success: OpenAPIResponse(
                    description=description,  # type: ignore[arg-type]
                    content=_json(ok_schema),
                    headers=_headers(answer_headers or {}, required=False),
                ),
                **{str(status): _error(status, error_schema) for status in sorted(statuses)},
            }

    return DocumentedOperation


def _json(schema: dict[str, Any]) -> dict[str, OpenAPIMediaType]:
    # A plain dict where Litestar types a Schema: Operation.to_schema() writes dicts through unchanged.
    return {JSON: OpenAPIMediaType(schema=schema)}  # type: ignore[arg-type]


def _error(status: int, schema: dict[str, Any]) -> OpenAPIResponse:
    headers = _headers(_HEADERS.get(status, {}), required=True)
    content = None if status == HTTPStatus.NOT_MODIFIED else _json(schema)
    return OpenAPIResponse(description=HTTPStatus(status).phrase, content=content, headers=headers)


def _headers(described: Mapping[str, str], *, required: bool) -> dict[str, OpenAPIHeader | Reference] | None:
    headers: dict[str, OpenAPIHeader | Reference] = {
        name: OpenAPIHeader(description=description, required=required, schema=_STRING)
        for name, description in described.items()
    }
    return headers or None


def _not_null(parameter: Any) -> Any:
    """A query parameter is absent or a string, never null: drop Litestar's `null` branch of
    an optional parameter's schema, keeping what it set beside it (format, description)."""
    schema = parameter.schema
    if not (isinstance(schema, Schema) and schema.one_of):
        return parameter
    branches = [branch for branch in schema.one_of if branch.type != "null"]
    if len(branches) == 1:
        merged = {key: value for key, value in vars(schema).items() if value is not None and key != "one_of"}
        parameter.schema = Schema(**{**vars(branches[0]), **merged})
    return parameter
