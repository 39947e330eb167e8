"""The FHIR R4 façade, read-only: the same encounters as FHIR Encounter resources, under /fhir/R4.

- GET /fhir/R4/metadata: the CapabilityStatement (no token).
- GET /fhir/R4/Encounter/{id}: one Encounter (sql/queries/fhir/encounter.sql), ETag W/"<version>"
  (If-None-Match: 304); 410 for a deleted one, 404 for an unknown or malformed id.
- GET /fhir/R4/Encounter/{id}/_history: a Bundle of type history, every version newest first
  (sql/queries/fhir/history.sql); GET …/_history/{vid}: one version (sql/queries/fhir/version.sql),
  410 for a deletion, 404 for an unknown version.
- GET /fhir/R4/Encounter?… and POST /fhir/R4/Encounter/_search (a form): a Bundle of type
  searchset, one page, with self and next links (sql/queries/fhir/search.sql).

PostgreSQL builds every resource and Bundle (encounters_api.fhir_encounter); this module decodes
the FHIR search parameters into that query's parameters, strictly: an unknown parameter, modifier
or value is a 400, never ignored. Errors are OperationOutcome resources (errors.py, for /fhir paths).
Tokens: READ_SCOPE, or a SMART scope that grants Encounter read or search (auth.smart_grants).
These routes read the primary (they are not in api/read_routing.py's table), and a search is a
heavy read (api/read_gate.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.enums import ParamType
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.spec import OpenAPIHeader, OpenAPIMediaType, OpenAPIResponse, Operation, Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import FromPath

from encounters_service.api.common import BEARER, FORM_BODY, IGNORE_UNKNOWN_QUERY, caller_of, database, requires
from encounters_service.auth import FHIR_READ, FHIR_SEARCH
from encounters_service.errors import FHIR_JSON
from encounters_service.etags import none_match, weak_etag

BASE = "/fhir/R4"
FORM = "application/x-www-form-urlencoded"
DEFAULT_COUNT = 50
MAX_COUNT = 1000
CAPABILITY_DATE = "2026-12-01"  # when the CapabilityStatement below last changed
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NIL_UUID, _MAX_UUID = "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BARE_VERSION = re.compile(r"[1-9][0-9]{0,17}")  # a versionId, as encounters_service/etags.py spells one

# What a request may ask for with _format or Accept: FHIR's JSON (answered as application/fhir+json).
_JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
_ACCEPTED = _JSON_FORMATS | {"*/*", "application/*"}

# Encounter.status codes (FHIR R4 value set encounter-status); only two occur here (docs/api.md "FHIR").
STATUSES = frozenset(
    {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled", "entered-in-error", "unknown"}
)
# The search parameters, as the CapabilityStatement lists them: (name, type, definition, what it matches).
SEARCH_PARAMETERS = (
    ("_id", "token", "http://hl7.org/fhir/SearchParameter/Resource-id", "the encounter's uuid"),
    ("patient", "reference", "http://hl7.org/fhir/SearchParameter/clinical-patient", "Patient/<uuid> or a uuid"),
    ("subject", "reference", "http://hl7.org/fhir/SearchParameter/Encounter-subject", "Patient/<uuid> or a uuid"),
    (
        "location",
        "reference",
        "http://hl7.org/fhir/SearchParameter/Encounter-location",
        "Location/<uuid> or a uuid: the current location or one in the location history",
    ),
    ("status", "token", "http://hl7.org/fhir/SearchParameter/Encounter-status", "in-progress, finished, …"),
    (
        "date",
        "date",
        "http://hl7.org/fhir/SearchParameter/clinical-date",
        "the period, open periods ending at infinity; prefixes eq ne gt lt ge le sa eb ap; one value per parameter",
    ),
    (
        "_lastUpdated",
        "date",
        "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
        "meta.lastUpdated; prefixes as for date",
    ),
    (
        "identifier",
        "token",
        "http://hl7.org/fhir/SearchParameter/clinical-identifier",
        "system|value, value, or system| (the EPR id)",
    ),
    ("part-of", "reference", "http://hl7.org/fhir/SearchParameter/Encounter-part-of", "Encounter/<uuid> or a uuid"),
)
# Result parameters, each at most once: _count, _sort, _summary, _total; and _format and the
# paging cursor of the next links.
SINGLE = frozenset({"_count", "_sort", "_summary", "_total", "_format", "_cursor"})
SEARCH_NAMES = frozenset(name for name, *_ in SEARCH_PARAMETERS) | SINGLE
SORTS = {"": ("", False), "date": ("date", False), "-date": ("date", True)}
SORTS |= {"_lastUpdated": ("_lastUpdated", False), "-_lastUpdated": ("_lastUpdated", True)}
# The cursor of a next link (sql/queries/fhir/search.sql writes it), per sort: the last entry's key and uuid.
_CURSOR = {
    "": re.compile(r"i(?P<uuid>[0-9a-f-]{36})"),
    "date": re.compile(r"d(?P<key>-?\d{1,20})_(?P<uuid>[0-9a-f-]{36})"),
    "_lastUpdated": re.compile(r"l(?P<key>-?\d{1,20})_(?P<uuid>[0-9a-f-]{36})"),
}
DATE_PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})
_DATE = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<offset>Z|[+-]\d{2}:\d{2})?)?)?)?",
    re.ASCII,
)

FHIR_READ_ROUTE = requires(FHIR_READ) | {IGNORE_UNKNOWN_QUERY: True}
FHIR_SEARCH_ROUTE = requires(FHIR_SEARCH) | {IGNORE_UNKNOWN_QUERY: True}


def fhir_response(document: bytes | str, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content=document, media_type=FHIR_JSON, status_code=status_code, headers=headers)


class NotAcceptable(HTTPException):
    status_code = 406


def _pairs(query_string: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a query string or form, in order, repeated names kept."""
    try:
        pairs = parse_qsl(query_string.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ValidationException("the parameters are not UTF-8") from None
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise ValidationException(f"parameter {name!r} must not contain NUL characters")
    return pairs


def _check_names(pairs: Iterable[tuple[str, str]], allowed: frozenset[str]) -> None:
    """Strict handling: an unknown parameter or modifier is a 400, never silently ignored."""
    names = [name for name, _ in pairs]
    modified = sorted({name for name in names if ":" in name})
    if modified:
        raise ValidationException(f"search modifiers are not supported: {', '.join(modified)}")
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise ValidationException(
            f"unknown parameter(s): {', '.join(unknown)} (this server handles search parameters strictly;"
            f" it knows {', '.join(sorted(allowed))})"
        )
    repeated = sorted({name for name in names if name in SINGLE and names.count(name) > 1})
    if repeated:
        raise ValidationException(f"parameter(s) given more than once: {', '.join(repeated)}")


def _negotiate(request: Request, pairs: Iterable[tuple[str, str]]) -> None:
    """406 unless the caller can take FHIR JSON (by _format, else by Accept)."""
    for name, value in pairs:
        if name == "_format":
            if value.partition(";")[0].strip().lower() not in _JSON_FORMATS:
                raise NotAcceptable(f"_format {value!r} is not supported: this server answers JSON only (_format=json)")
            return
    accept = request.headers.get("accept")
    if accept is None:
        return
    ranges = {part.partition(";")[0].strip().lower() for part in accept.split(",")}
    if not ranges & _ACCEPTED:
        raise NotAcceptable(f"cannot answer Accept: {accept}; this server answers application/fhir+json")


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + BASE


# --- metadata -----------------------------------------------------------------------------------


def capability_statement(version: str, base_url: str) -> dict[str, Any]:
    """What this server supports, exactly: Encounter read and search-type, the parameters above."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITY_DATE,
        "publisher": "encounters-service",
        "kind": "instance",
        "software": {"name": "encounters-service", "version": version},
        "implementation": {"description": "Encounters service, FHIR R4 façade (read-only)", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read-only. Search parameters are handled strictly (as with Prefer: handling=strict): an unknown"
                    " parameter, modifier or value is refused with 400 and an OperationOutcome, never ignored."
                    " Paging: the next link carries a cursor (_cursor); pages never repeat or skip an encounter."
                ),
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": (
                        "Authorization: Bearer <JWT> with scope read:send_encounter, or a SMART scope granting"
                        " Encounter read/search: system/Encounter.read, user/Encounter.read, system/*.read,"
                        " user/*.read (v1), or system|user/(Encounter|*).<cruds> with r (read) and s (search) (v2)."
                    ),
                },
                "resource": [
                    {
                        "type": "Encounter",
                        "interaction": [
                            {"code": "read"},
                            {"code": "vread"},
                            {"code": "history-instance"},
                            {"code": "search-type"},
                        ],
                        "versioning": "versioned",
                        "readHistory": True,
                        "conditionalRead": "not-match",
                        "documentation": (
                            'meta.versionId is the encounter\'s version, the ETag of a read W/"<versionId>"'
                            " (If-None-Match: 304). _history lists every version, newest first, deleted encounters"
                            " included: a version with deleted_at is a DELETE entry without a resource, and its"
                            " vread answers 410. _history takes no parameters (_since, _at, _count: 400)."
                        ),
                        "updateCreate": False,
                        "searchParam": [
                            {"name": name, "definition": definition, "type": kind, "documentation": documentation}
                            for name, kind, definition, documentation in SEARCH_PARAMETERS
                        ],
                    }
                ],
                "interaction": [],
            }
        ],
    }


# --- search parameters --------------------------------------------------------------------------


def _split(value: str, separator: str) -> list[str]:
    """`value` split on each `separator` not escaped with a backslash (FHIR escapes \\ \\, \\| \\$);
    the escapes are kept, for the next split (_unescape undoes them)."""
    parts, start, escaped = [], 0, False
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _reference(name: str, token: str, resource_type: str | None) -> str:
    """The uuid of `<uuid>` or `<resource_type>/<uuid>`, lower case; else a 400."""
    token = _unescape(token)
    kind, _, uuid = token.rpartition("/")
    if (kind and kind != resource_type) or not _CANONICAL_UUID.fullmatch(uuid):
        form = f"{resource_type}/<uuid> or a uuid" if resource_type else "a uuid"
        raise ValidationException(f"{name} must be {form} (ids on this server are UUIDs), got {token!r}")
    return uuid.lower()


def _groups(pairs: list[tuple[str, str]], names: Iterable[str]) -> list[list[str]]:
    """Per occurrence of one of `names` with a value (FHIR: an empty parameter is ignored), its OR-list."""
    return [_split(value, ",") for name, value in pairs if name in names and value != ""]


def _one_of_each(groups: list[set[str]]) -> set[str] | None:
    """What a field with one value per encounter must be to match every group (each an OR-set):
    in all of them. None: no group, no filter."""
    if not groups:
        return None
    return set.intersection(*groups)


def _date_value(name: str, text: str) -> tuple[str, datetime, str]:
    """(prefix, start of the value's range in UTC, its precision as an interval) of a date search value."""
    prefix = text[:2] if text[:2] in DATE_PREFIXES else "eq"
    value = text[2:] if text[:2] in DATE_PREFIXES else text
    value = value.replace(" ", "+")  # an unencoded + of an offset arrives as a space
    match = _DATE.fullmatch(value)
    if match is None:
        raise ValidationException(
            f"{name} must be [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]]], prefixes"
            f" {' '.join(sorted(DATE_PREFIXES))}; one value per parameter (repeat it for AND), got {text!r}"
        )
    fraction, offset = match["fraction"], match["offset"]
    part = {key: int(match[key]) for key in ("year", "month", "day", "hour", "minute", "second") if match[key]}
    if "hour" in part and offset is None:
        offset = "Z"  # no offset: this server's time zone, UTC
    unit = next(unit for key, unit in _UNITS if key in part)
    if fraction:
        unit = f"{max(10 ** -len(fraction), 1e-6):.6f} second"
    zone = UTC if offset in (None, "Z") else _zone(name, offset)
    try:
        start = datetime(
            part["year"],
            part.get("month", 1),
            part.get("day", 1),
            part.get("hour", 0),
            part.get("minute", 0),
            part.get("second", 0),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=zone,
        ).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationException(f"{name}: {text!r} is not a date between the years 0001 and 9999") from None
    return prefix, start, unit


_UNITS = (("second", "1 second"), ("minute", "1 minute"), ("day", "1 day"), ("month", "1 month"), ("year", "1 year"))


def _zone(name: str, offset: str) -> timezone:
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    if hours > 23 or minutes > 59:
        raise ValidationException(f"{name}: the offset {offset} is not a time zone offset")
    sign = -1 if offset[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _dates(name: str, pairs: list[tuple[str, str]]) -> dict[str, list[Any]]:
    values = [_date_value(name, value) for key, value in pairs if key == name and value != ""]
    return {"prefixes": [v[0] for v in values], "lows": [v[1] for v in values], "units": [v[2] for v in values]}


def _identifiers(pairs: list[tuple[str, str]], system: str) -> tuple[list[str] | None, bool]:
    """From the identifier parameters: (the EPR ids one of which an encounter must have, or None
    for any; whether it must have an EPR id at all). Per parameter, its tokens OR: `value` (any
    system) and `<system>|value` allow that EPR id, `<system>|` any EPR id, another system or
    none (`|value`) none. The parameters AND."""
    wanted: list[set[str] | None] = []  # per parameter: the EPR ids it allows, None for any
    for tokens in _groups(pairs, ["identifier"]):
        allowed: set[str] | None = set()
        for token in tokens:
            parts = [_unescape(part) for part in _split(token, "|")]
            if len(parts) == 1:
                value: str | None = parts[0]
            elif parts[0] == system:
                value = "|".join(parts[1:]) or None  # `<system>|`: any EPR id
                if value is None:
                    allowed = None
            else:
                continue
            if allowed is not None and value is not None:
                allowed.add(value)
        wanted.append(allowed)
    if not wanted:
        return None, False
    sets = [allowed for allowed in wanted if allowed is not None]
    return (sorted(set.intersection(*sets)) if sets else None), True


def _count(pairs: list[tuple[str, str]], summary_count: bool) -> int:
    text = dict(pairs).get("_count")
    if summary_count:
        return 0
    if text is None or text == "":
        return DEFAULT_COUNT
    if not text.isascii() or not text.isdigit():
        raise ValidationException(f"_count must be a whole number from 0 to {MAX_COUNT}, got {text!r}")
    return min(int(text), MAX_COUNT)  # FHIR: a server may answer fewer than asked; the links say how many


def _cursor(text: str | None, sort: str, descending: bool) -> tuple[object, str]:
    if not text:
        return ("infinity", _MAX_UUID) if descending else ("-infinity", _NIL_UUID)
    match = _CURSOR[sort].fullmatch(text)
    if match is None or not _CANONICAL_UUID.fullmatch(match["uuid"]):
        raise ValidationException("_cursor is not a cursor of this search: follow the next link as it is")
    if sort == "":
        return "-infinity", match["uuid"]
    try:
        return _EPOCH + timedelta(microseconds=int(match["key"])), match["uuid"]
    except OverflowError:
        raise ValidationException("_cursor is not a cursor of this search: follow the next link as it is") from None


def search_parameters(pairs: list[tuple[str, str]], base: str, epr_identifier_system: str) -> dict[str, Any]:
    """The parameters of sql/queries/fhir/search.sql for a search given as `pairs`, on the FHIR
    base URL `base` (a 400 for a parameter that is unknown or malformed)."""
    _check_names(pairs, SEARCH_NAMES)
    single = dict(pairs)
    summary = single.get("_summary", "false")
    if summary not in ("false", "count"):
        raise ValidationException(f"_summary must be count (or false), got {summary!r}")
    total = single.get("_total", "none")
    if total not in ("none", "estimate", "accurate"):
        raise ValidationException(f"_total must be none, estimate or accurate, got {total!r}")
    sort_text = single.get("_sort", "")
    if sort_text not in SORTS:
        raise ValidationException(f"_sort must be one of {', '.join(s for s in SORTS if s)}, got {sort_text!r}")
    sort, descending = SORTS[sort_text]
    after_key, after_uuid = _cursor(single.get("_cursor"), sort, descending)
    count = _count(pairs, summary == "count")

    def uuids(names: list[str], resource_type: str | None) -> set[str] | None:
        groups = [{_reference(names[0], t, resource_type) for t in g} for g in _groups(pairs, names)]
        return _one_of_each(groups)

    ids = uuids(["_id"], None)
    patients = uuids(["patient", "subject"], "Patient")
    part_of = uuids(["part-of"], "Encounter")
    location_groups = [sorted({_reference("location", t, "Location") for t in g}) for g in _groups(pairs, ["location"])]
    status_groups = [{_unescape(token) for token in g} for g in _groups(pairs, ["status"])]
    unknown_statuses = sorted(set().union(*status_groups) - STATUSES)
    if unknown_statuses:
        raise ValidationException(
            f"status must be among {', '.join(sorted(STATUSES))}, got {', '.join(map(repr, unknown_statuses))}"
        )
    statuses = _one_of_each(status_groups)
    epr_ids, with_epr_id = _identifiers(pairs, epr_identifier_system)
    dates, updated = _dates("date", pairs), _dates("_lastUpdated", pairs)
    shown = [(name, value) for name, value in pairs if name not in ("_count", "_cursor")] + [("_count", str(count))]
    return {
        "ids": sorted(ids or ()),
        "patients": sorted(patients or ()),
        "part_of": sorted(part_of or ()),
        "locations": sorted({uuid for group in location_groups for uuid in group}),
        "location_groups": ["{" + ",".join(group) + "}" for group in location_groups],
        "statuses": sorted(statuses or ()),
        "epr_ids": epr_ids or [],
        "with_epr_id": with_epr_id,
        # A filter whose groups have nothing in common matches nothing (an empty list would mean no filter).
        "nothing": any(found == set() for found in (ids, patients, part_of, statuses))
        or (with_epr_id and epr_ids == []),
        "date_prefixes": dates["prefixes"],
        "date_lows": dates["lows"],
        "date_units": dates["units"],
        "updated_prefixes": updated["prefixes"],
        "updated_lows": updated["lows"],
        "updated_units": updated["units"],
        "sort": sort,
        "descending": descending,
        "after_key": after_key,
        "after_uuid": after_uuid,
        "count": count,
        "with_total": total != "none" or summary == "count",
        "self_url": f"{base}/Encounter?{urlencode(shown + [(n, v) for n, v in pairs if n == '_cursor'])}",
        "next_url": f"{base}/Encounter?{urlencode(shown)}&_cursor=",
        "base_url": base,
        "epr_identifier_system": epr_identifier_system,
    }


async def _search(request: Request, pairs: list[tuple[str, str]]) -> Response:
    params = search_parameters(pairs, _base_url(request), request.app.state.settings.fhir_epr_identifier_system)
    _negotiate(request, pairs)
    async with request.app.state.read_gate.slot(caller_of(request).id):  # a heavy read (api/read_gate.py)
        bundle = await database(request).value("fhir.search", **params)
    return fhir_response(bundle)


# --- OpenAPI ------------------------------------------------------------------------------------

_OUTCOME_SCHEMA = {
    "type": "object",
    "description": "a FHIR R4 OperationOutcome (https://hl7.org/fhir/R4/operationoutcome.html): issue[0].code"
    " says what kind of error (invalid, login, security, not-found, deleted, not-supported, transient, …),"
    " issue[0].diagnostics what was wrong",
    "required": ["resourceType", "issue"],
    "properties": {"resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array"}},
}


def fhir_documented(
    resource: str,
    errors: Iterable[int],
    parameters: Mapping[str, str] | None = None,
    *,
    etag: bool = False,
) -> type[Operation]:
    """An Operation class for a /fhir route: `resource` on success, an OperationOutcome for each
    error status, and the query parameters it reads itself ({name: description}); with `etag`, the
    ETag of the version it answers, and If-None-Match (304) when 304 is among `errors`. (POST
    _search's form is described in words: as a requestBody of string fields, fuzzers take any form
    for invalid data, and no form can be.)"""

    @dataclass
    class FhirOperation(Operation):
        def __post_init__(self) -> None:
            schema = {
                "type": "object",
                "description": f"a FHIR R4 {resource} (https://hl7.org/fhir/R4/{resource.lower()}.html)",
                "required": ["resourceType"],
                "properties": {"resourceType": {"const": resource}},
            }
            documented = {"_format": "json, the only format (or Accept: application/fhir+json)", **(parameters or {})}
            path = [parameter for parameter in self.parameters or [] if getattr(parameter, "param_in", None) == "path"]
            self.parameters = path + [
                Parameter(
                    name=name,
                    param_in=ParamType.QUERY,
                    required=False,
                    description=text,
                    schema=Schema(type=OpenAPIType.STRING),
                )
                for name, text in documented.items()
            ]
            statuses = sorted({400, 406, 414, *errors} | ({401, 403, 503} if self.security else set()))
            if HTTPStatus.NOT_MODIFIED in statuses:
                self.parameters.append(
                    Parameter(
                        name="If-None-Match",
                        param_in=ParamType.HEADER,
                        required=False,
                        description=_IF_NONE_MATCH,
                        schema=Schema(type=OpenAPIType.STRING),
                    )
                )
            etag_header = {"ETag": OpenAPIHeader(description=_ETAG, schema=Schema(type=OpenAPIType.STRING))}
            self.responses = {
                "200": OpenAPIResponse(
                    description="OK",
                    content={FHIR_JSON: OpenAPIMediaType(schema=schema)},  # type: ignore[arg-type]
                    headers=etag_header if etag else None,  # type: ignore[arg-type]
                ),
                **{
                    str(status): OpenAPIResponse(description=HTTPStatus(status).phrase, headers=etag_header)  # type: ignore[arg-type]
                    if status == HTTPStatus.NOT_MODIFIED
                    else OpenAPIResponse(
                        description=HTTPStatus(status).phrase,
                        content={FHIR_JSON: OpenAPIMediaType(schema=_OUTCOME_SCHEMA)},  # type: ignore[arg-type]
                    )
                    for status in statuses
                },
            }

    return FhirOperation


_ETAG = 'the version of the Encounter, weak (as FHIR answers reads): W/"3"; its meta.versionId is 3'
_IF_NONE_MATCH = 'ETags such as W/"3" (or "3"), or *: 304 with no body when one names the current version'

_SEARCH_DOCS = {name: f"{kind}: {documentation}" for name, kind, _, documentation in SEARCH_PARAMETERS} | {
    "_count": f"entries per page, default {DEFAULT_COUNT}, at most {MAX_COUNT} (more is answered as {MAX_COUNT})",
    "_sort": "date, -date, _lastUpdated or -_lastUpdated (default: by id)",
    "_summary": "count: the total alone, no entries",
    "_total": "accurate (or estimate): the Bundle has total; none (default): it has not",
    "_cursor": "the paging cursor of a next link; take the next link as it is",
}


# --- routes -------------------------------------------------------------------------------------


def _entity_tags(if_none_match: str | None) -> str | None:
    """If-None-Match as etags.none_match reads it; a bare versionId (`3`, as fhirpy's refresh()
    sends it) is taken as W/"3"."""
    if if_none_match is not None and _BARE_VERSION.fullmatch(if_none_match):
        return weak_etag(int(if_none_match))
    return if_none_match


def _read_parameters(request: Request) -> None:
    """A read takes _format alone (anything else is a 400), and answers FHIR JSON (else a 406)."""
    pairs = _pairs(request.scope["query_string"])
    _check_names(pairs, frozenset({"_format"}))
    _negotiate(request, pairs)


@get(
    f"{BASE}/metadata",
    opt={IGNORE_UNKNOWN_QUERY: True},
    summary="FHIR CapabilityStatement",
    operation_class=fhir_documented("CapabilityStatement", []),
)
async def metadata(request: Request) -> Response:
    _read_parameters(request)
    statement = capability_statement(request.app.state.settings.version, _base_url(request))
    return fhir_response(msgspec.json.encode(statement))


@get(
    f"{BASE}/Encounter/{{encounter_id:uuid}}",
    opt=FHIR_READ_ROUTE,
    summary="FHIR Encounter by id",
    security=BEARER,
    operation_class=fhir_documented("Encounter", [304, 404, 410], etag=True),
)
async def read_encounter(request: Request, encounter_id: FromPath[UUID]) -> Response:
    """An id that is not a canonical uuid is a 404 before the token is looked at, as on every route
    (api/common.py: the path must be spelled as its route)."""
    _read_parameters(request)
    rows = await database(request).rows(
        "fhir.encounter",
        encounter_id=encounter_id,
        epr_identifier_system=request.app.state.settings.fhir_epr_identifier_system,
    )
    if not rows:
        raise NotFoundException(f"Encounter/{encounter_id} is not known here")
    [(deleted, version, resource)] = rows
    if deleted:
        raise HTTPException(status_code=410, detail=f"Encounter/{encounter_id} has been deleted")
    headers = {"ETag": weak_etag(version)}
    if none_match(_entity_tags(request.headers.get("if-none-match")), version):
        return Response(content=b"", status_code=304, headers=headers)
    return fhir_response(resource, headers=headers)


@get(
    f"{BASE}/Encounter/{{encounter_id:uuid}}/_history",
    opt=FHIR_READ_ROUTE,
    summary="FHIR Encounter history: every version, newest first",
    security=BEARER,
    description="A Bundle of type history: each version of the encounter, newest first, deleted encounters"
    " included (a version with deleted_at is a DELETE entry, without a resource).",
    operation_class=fhir_documented("Bundle", [404]),
)
async def encounter_history(request: Request, encounter_id: FromPath[UUID]) -> Response:
    _read_parameters(request)
    bundle = await database(request).value(
        "fhir.history",
        encounter_id=encounter_id,
        epr_identifier_system=request.app.state.settings.fhir_epr_identifier_system,
        base_url=_base_url(request),
    )
    return fhir_response(bundle)


@get(
    f"{BASE}/Encounter/{{encounter_id:uuid}}/_history/{{version:int}}",
    opt=FHIR_READ_ROUTE,
    summary="FHIR Encounter version (vread)",
    security=BEARER,
    description="The Encounter as it was at that version (its meta.versionId); 410 for a version with"
    " deleted_at (a deletion), 404 for a version the encounter never had.",
    operation_class=fhir_documented("Encounter", [404, 410], etag=True),
)
async def read_encounter_version(request: Request, encounter_id: FromPath[UUID], version: FromPath[int]) -> Response:
    _read_parameters(request)
    rows = await database(request).rows(
        "fhir.version",
        encounter_id=encounter_id,
        version=version,
        epr_identifier_system=request.app.state.settings.fhir_epr_identifier_system,
    )
    if not rows:
        raise NotFoundException(f"Encounter/{encounter_id} has no version {version}")
    [(deleted, resource)] = rows
    if deleted:
        raise HTTPException(status_code=410, detail=f"Encounter/{encounter_id} was deleted at version {version}")
    return fhir_response(resource, headers={"ETag": weak_etag(version)})


@get(
    f"{BASE}/Encounter",
    opt=FHIR_SEARCH_ROUTE,
    summary="FHIR Encounter search",
    security=BEARER,
    operation_class=fhir_documented("Bundle", [], _SEARCH_DOCS),
)
async def search_encounters(request: Request) -> Response:
    return await _search(request, _pairs(request.scope["query_string"]))


@post(
    f"{BASE}/Encounter/_search",
    opt=FHIR_SEARCH_ROUTE | {FORM_BODY: True},
    status_code=200,
    summary="FHIR Encounter search, parameters in a form",
    security=BEARER,
    description="The search parameters as a form (application/x-www-form-urlencoded body), and/or in the query"
    " string: the same parameters, with the same meaning, as GET /fhir/R4/Encounter.",
    operation_class=fhir_documented("Bundle", [408, 413, 415], _SEARCH_DOCS),
)
async def search_encounters_by_form(request: Request) -> Response:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    body = await request.body()
    if body and media_type != FORM:
        raise HTTPException(
            status_code=415, detail="POST _search takes its parameters as a form (application/x-www-form-urlencoded)"
        )
    return await _search(request, _pairs(request.scope["query_string"]) + _pairs(body))


ROUTES = [
    metadata,
    read_encounter,
    encounter_history,
    read_encounter_version,
    search_encounters,
    search_encounters_by_form,
]
