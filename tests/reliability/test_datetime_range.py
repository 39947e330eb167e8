"""Input datetimes follow one grammar and one range, in bodies and query strings alike.

Every body field and every query parameter that takes a datetime is tried with the same table of
spellings: what one accepts the other accepts, as the same instant, and what one refuses (400,
naming the field or parameter) the other refuses, and nothing is stored. The range is that of the
answers' own form: 0001-01-01T00:00:00.000Z … 9999-12-31T23:59:59.999Z, as a UTC instant (was: an
instant before year 1 stored as 1 BC, one after 9999 answered as year 10000, an offset beyond
±15:59 refused with PostgreSQL's own text).

The tests share one database clone and one app: each arranges its own new patient and location.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from uuid import uuid4

import msgspec
import msgspec.inspect
import psycopg
import pytest
from litestar.testing import TestClient

from encounters_service.app import create_app
from encounters_service.db import connect_sync
from encounters_service.instants import LATEST
from encounters_service.models import Body
from tests.api.test_encounter_writes import ENCOUNTERS, create_body, encounter_url, snapshot
from tests.conftest import template_clone
from tests.helpers import TEST_SETTINGS, as_app
from tests.queries.arrange import insert_encounter
from tests.reliability.conftest import SYSTEM

# text → the UTC instant it names (to the microsecond).
ACCEPTED = {
    "2018-01-01T00:00:00.000Z": "2018-01-01T00:00:00.000000Z",  # what the original service's callers send
    "2018-01-01T00:00:00Z": "2018-01-01T00:00:00.000000Z",
    "2018-01-01T01:00:00+01:00": "2018-01-01T00:00:00.000000Z",
    "2018-01-01T01:00:00.250+01:00": "2018-01-01T00:00:00.250000Z",
    "2017-12-31T19:00:00-05:00": "2018-01-01T00:00:00.000000Z",
    "2018-01-01T01:00:00+0100": "2018-01-01T00:00:00.000000Z",
    "2018-01-01T00:00:00-00:00": "2018-01-01T00:00:00.000000Z",
    "2018-01-01t00:00:00z": "2018-01-01T00:00:00.000000Z",
    "2018-01-01 00:00:00Z": "2018-01-01T00:00:00.000000Z",
    "2018-01-01T00:00:00.5Z": "2018-01-01T00:00:00.500000Z",
    "2018-01-01T00:00:00.1234564Z": "2018-01-01T00:00:00.123456Z",  # rounded to the microsecond
    "2018-01-01T00:00:00.123456789Z": "2018-01-01T00:00:00.123457Z",
    "2018-01-01T16:00:00+16:00": "2018-01-01T00:00:00.000000Z",  # was PostgreSQL's "displacement out of range"
    "2017-12-31T00:01:00-23:59": "2018-01-01T00:00:00.000000Z",
    "0001-01-01T00:00:00Z": "0001-01-01T00:00:00.000000Z",
    "0001-01-01T14:00:00+14:00": "0001-01-01T00:00:00.000000Z",
    "0001-01-01T00:00:00-12:00": "0001-01-01T12:00:00.000000Z",
    "9999-12-31T23:59:59.999Z": "9999-12-31T23:59:59.999000Z",
    "9999-12-31T11:59:59.999-12:00": "9999-12-31T23:59:59.999000Z",
    "9999-12-31T23:59:59+14:00": "9999-12-31T09:59:59.000000Z",
}
# Well-formed, but the UTC instant is outside 0001-01-01T00:00:00Z … 9999-12-31T23:59:59.999Z.
OUT_OF_RANGE = [
    "0001-01-01T00:00:00+14:00",  # was stored as 1 BC and answered as 0001-12-31T10:00:00.000Z
    "0001-01-01T00:00:00.999999+00:01",
    "9999-12-31T23:59:59-12:00",  # was answered as 10000-01-01T11:59:59.000Z
    "9999-12-31T23:59:59.9995Z",  # after the last millisecond an answer can show
]
MALFORMED = [
    "",
    "yesterday",
    "infinity",  # PostgreSQL would take these
    "-infinity",
    "now",
    "epoch",
    "2018-01-01T00:00:00",  # no offset
    "2018-01-01T00:00:00+01",  # offset without minutes
    "2018-01-01T00:00:00+01:00:30",
    "2018-01-01T00:00:00+24:00",
    "2018-01-01T00:00:00+01:60",
    "2018-01-01T00:00:00 Z",
    "2018-01-01T00:00Z",  # no seconds
    "2018-01-01T00Z",
    "20180101T000000Z",  # basic format
    "2018-W01-1T00:00:00Z",  # week date
    "2018-001T00:00:00Z",  # ordinal date
    "2018-01-01T00:00:00,5Z",  # comma fraction
    "2018-01-01T00:00:00.Z",
    "2018-01-01T24:00:00Z",
    "2018-01-01T23:59:60Z",
    "2018-02-30T00:00:00Z",
    "2018-1-01T00:00:00Z",
    "2018-01-01X00:00:00Z",
    " 2018-01-01T00:00:00Z",
    "2018-01-01T00:00:00Z ",
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "+2018-01-01T00:00:00Z",
    "２０１８-01-01T00:00:00Z",  # fullwidth digits
    "20180101",  # dates other than YYYY-MM-DD: refused by modified_since too
    "2018-W01-1",
    "2018-001",
    "2018-1-1",
    " 2018-01-01",
    "2018-01-01T",
]
REFUSED = OUT_OF_RANGE + MALFORMED
RANGE = "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"
# Spellings only a query string has: an unencoded "+" arrives as a space (query_params' rule), and
# modified_since also takes a plain date (midnight UTC). A body refuses both.
UNENCODED_PLUS = ("2018-01-01T01:00:00 01:00", "2018-01-01T00:00:00.000000Z")
PLAIN_DATE = ("2018-01-01", "2018-01-01T00:00:00.000000Z")


@pytest.fixture(scope="module")
def module_database(pg_server, template_conninfo) -> Iterator[str]:
    with template_clone(pg_server) as conninfo:
        yield conninfo


@pytest.fixture(scope="module")
def client(module_database: str) -> Iterator[TestClient]:
    with TestClient(create_app(TEST_SETTINGS, as_app(module_database))) as test_client:
        test_client.headers.update(SYSTEM)
        yield test_client


@pytest.fixture(scope="module")
def db(module_database: str) -> Iterator[psycopg.Connection]:
    with connect_sync(module_database, autocommit=True) as conn:
        yield conn


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def as_answered(instant: str) -> str:
    """An instant of the tables above as answers show it: milliseconds, truncated."""
    return instant[:23] + "Z"


# --- bodies ---------------------------------------------------------------------------------------
# prepare(client) arranges what the request needs (an encounter to update) and gives send(text),
# which sends `text` in one field, and shown(answer), where the answer shows that field.
Prepared = tuple[Callable[[str], object], Callable[[dict], str]]


def _create(field: str) -> Callable[[TestClient], Prepared]:
    def prepare(client):
        return lambda text: client.post(ENCOUNTERS, json=create_body(**{field: text})), lambda answer: answer[field]

    return prepare


def _create_visit(field: str) -> Callable[[TestClient], Prepared]:
    def prepare(client):
        def send(text):
            visit = {"location_uuid": str(uuid4()), field: text}
            return client.post(ENCOUNTERS, json=create_body(location_history=[visit]))

        return send, lambda answer: answer["location_history"][0][field]

    return prepare


def _update(field: str) -> Callable[[TestClient], Prepared]:
    def prepare(client):
        url = encounter_url(ok(client.post(ENCOUNTERS, json=create_body()))["uuid"])
        return lambda text: client.patch(url, json={field: text}), lambda answer: answer[field]

    return prepare


def _update_score_system_history(client) -> Prepared:
    encounter = ok(client.post(ENCOUNTERS, json=create_body()))
    changed = ok(client.patch(encounter_url(encounter["uuid"]), json={"score_system": "meows"}))
    url = f"/dhos/v1/score_system_history/{changed['score_system_history'][0]['uuid']}"
    return lambda text: client.patch(url, json={"changed_time": text}), lambda answer: answer["changed_time"]


BODY_FIELDS = {
    "create admitted_at": ("admitted_at", _create("admitted_at")),
    "create discharged_at": ("discharged_at", _create("discharged_at")),
    "create deleted_at": ("deleted_at", _create("deleted_at")),
    "create location_history arrived_at": ("arrived_at", _create_visit("arrived_at")),
    "create location_history departed_at": ("departed_at", _create_visit("departed_at")),
    "update admitted_at": ("admitted_at", _update("admitted_at")),
    "update discharged_at": ("discharged_at", _update("discharged_at")),
    "update deleted_at": ("deleted_at", _update("deleted_at")),
    "score system history changed_time": ("changed_time", _update_score_system_history),
}


def _holds_datetime(kind: msgspec.inspect.Type) -> bool:
    if isinstance(kind, msgspec.inspect.Metadata):
        return _holds_datetime(kind.type)
    if isinstance(kind, msgspec.inspect.UnionType):
        return any(map(_holds_datetime, kind.types))
    return isinstance(kind, msgspec.inspect.DateTimeType)


def test_every_datetime_field_of_every_body_is_tried():
    fields = {
        (body.__name__, field.name)
        for body in Body.__subclasses__()
        for field in msgspec.inspect.type_info(body).fields
        if _holds_datetime(field.type)
    }
    assert fields == {
        ("EncounterCreate", "admitted_at"),
        ("EncounterCreate", "discharged_at"),
        ("EncounterCreate", "deleted_at"),
        ("LocationVisit", "arrived_at"),
        ("LocationVisit", "departed_at"),
        ("EncounterUpdate", "admitted_at"),
        ("EncounterUpdate", "discharged_at"),
        ("EncounterUpdate", "deleted_at"),
        ("ScoreSystemHistoryUpdate", "changed_time"),
    }, "a datetime field that BODY_FIELDS does not try"


@pytest.mark.parametrize(("text", "instant"), ACCEPTED.items())
@pytest.mark.parametrize("where", BODY_FIELDS)
def test_a_body_datetime_in_range_is_stored_as_its_utc_instant(client, where, text, instant):
    _, prepare = BODY_FIELDS[where]
    send, shown = prepare(client)
    assert shown(ok(send(text))) == as_answered(instant)


@pytest.mark.parametrize("text", [*REFUSED, UNENCODED_PLUS[0], PLAIN_DATE[0]])
@pytest.mark.parametrize("where", BODY_FIELDS)
def test_a_body_datetime_out_of_range_or_malformed_is_400_naming_the_field_and_stores_nothing(client, db, where, text):
    field, prepare = BODY_FIELDS[where]
    send, _ = prepare(client)
    before = snapshot(db)
    response = send(text)
    assert response.status_code == 400, (text, response.text)
    assert set(response.json()) == {"message"}
    message = response.json()["message"]
    assert field in message, message
    if text in OUT_OF_RANGE:
        assert RANGE in message, message
    assert snapshot(db) == before


# --- query parameters -----------------------------------------------------------------------------
# Each route is asked about an arranged encounter that a given instant should (or should not) find.


class QueryRoute:
    def __init__(self, method: str, path: str, parameter: str, listed: str | None, shows: Callable) -> None:
        self.method, self.path, self.parameter, self.listed, self.shows = method, path, parameter, listed, shows

    def arrange(self, db, instant: str) -> dict:
        """An encounter that the instant finds and the next microsecond does not: discharged (or, for
        modified_since, modified) one microsecond after it."""
        after = _parse(instant) + timedelta(microseconds=1)
        column = "modified" if self.parameter == "modified_since" else "discharged_at"
        patient, location = uuid4(), uuid4()
        encounter = insert_encounter(db, patient_uuid=patient, location_uuid=location, **{column: after})
        return {"patient": str(patient), "location": str(location), "encounter": str(encounter)}

    def ask(self, client, arranged: dict | None, text: str):
        arranged = arranged or {"patient": str(uuid4()), "location": str(uuid4()), "encounter": None}
        query = {self.parameter: text}
        if self.path in ("/dhos/v2/encounter", "/dhos/v2/encounter/latest") and self.method == "GET":
            query["patient_id"] = arranged["patient"]
        if self.method == "GET":
            return client.get(self.path, params=query)
        return client.post(self.path, params=query, json=[arranged[self.listed]])

    def finds(self, client, arranged: dict, text: str) -> bool:
        response = self.ask(client, arranged, text)
        if response.status_code == 404 and self.path == "/dhos/v2/encounter/latest":
            return False
        return self.shows(ok(response), arranged)


def _parse(instant: str) -> datetime:
    return datetime.strptime(instant, "%Y-%m-%dT%H:%M:%S.%f%z")


def _in_list(answer, arranged) -> bool:
    return arranged["encounter"] in [encounter["uuid"] for encounter in answer]


QUERY_ROUTES = {
    f"{route.method} {route.path} {route.parameter}": route
    for route in [
        QueryRoute("GET", "/dhos/v2/encounter", "open_as_of", None, _in_list),
        QueryRoute("GET", "/dhos/v2/encounter/latest", "open_as_of", None, lambda a, r: a["uuid"] == r["encounter"]),
        QueryRoute(
            "POST",
            "/dhos/v2/encounter/latest",
            "open_as_of",
            "patient",
            lambda a, r: a.get(r["patient"], {}).get("uuid") == r["encounter"],
        ),
        QueryRoute("POST", "/dhos/v1/encounter/locations", "open_as_of", "location", _in_list),
        QueryRoute("POST", "/dhos/v1/encounter/patients", "open_as_of", "patient", _in_list),
        QueryRoute(
            "POST",
            "/dhos/v1/encounter/locations/patient_count",
            "open_as_of",
            "location",
            lambda a, r: a == {r["location"]: 1},
        ),
        QueryRoute("GET", "/dhos/v2/encounters", "modified_since", None, _in_list),
    ]
}


def _query_accepted(route: QueryRoute) -> list[tuple[str, str]]:
    extra = [UNENCODED_PLUS] + ([PLAIN_DATE] if route.parameter == "modified_since" else [])
    return [*ACCEPTED.items(), *extra]


@pytest.mark.parametrize(
    ("where", "text", "instant"),
    [(where, text, instant) for where, route in QUERY_ROUTES.items() for text, instant in _query_accepted(route)],
)
def test_a_query_datetime_in_range_names_its_utc_instant(client, db, where, text, instant):
    route = QUERY_ROUTES[where]
    arranged = route.arrange(db, instant)
    assert route.finds(client, arranged, text), "read as a later instant"
    later = _parse(instant) + timedelta(microseconds=1)
    if later <= LATEST:  # the arrangement tells the two apart
        assert not route.finds(client, arranged, later.isoformat(timespec="microseconds"))


@pytest.mark.parametrize(
    ("where", "text"),
    [
        (where, text)
        for where, route in QUERY_ROUTES.items()
        for text in [*REFUSED, *([] if route.parameter == "modified_since" else [PLAIN_DATE[0]])]
    ],
)
def test_a_query_datetime_out_of_range_or_malformed_is_400_naming_the_parameter(client, where, text):
    route = QUERY_ROUTES[where]
    response = route.ask(client, None, text)
    assert response.status_code == 400, (text, response.text)
    assert set(response.json()) == {"message"}
    message = response.json()["message"]
    assert route.parameter in message, message
    if text in OUT_OF_RANGE:
        assert RANGE in message, message
