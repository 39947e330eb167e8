"""Every failure becomes `{"message": …}` with the right status, never a stack trace.

Routes that raise on purpose are registered on the real app (with the real scope checks, exception
handlers and database) so that each status is produced the way a route would produce it.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from litestar import Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.testing import TestClient

from encounters_service.api.common import READ, WRITE, database, json_response, requires
from encounters_service.app import create_app
from encounters_service.auth import READ_SCOPE, WRITE_SCOPE
from encounters_service.sqlfiles import Query
from tests.conftest import drop_database
from tests.helpers import TEST_SETTINGS, as_app, auth


class Body(msgspec.Struct, forbid_unknown_fields=True):
    name: str


def raising_query(sqlstate: str) -> Query:
    """A statement that fails the way our functions fail: RAISE with a SQLSTATE and a message."""
    sql = f"DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '{sqlstate}', MESSAGE = 'raised {sqlstate}'; END $$"
    return Query(f"test.raise_{sqlstate}", Path("test"), "raises", (), sql)


@get("/test/raise/{sqlstate:str}", opt=READ)
async def raise_sqlstate(request: Request, sqlstate: FromPath[str]) -> None:
    db = database(request)
    db.queries[f"test.raise_{sqlstate}"] = raising_query(sqlstate)
    await db.rows(f"test.raise_{sqlstate}")


@get("/test/crash")
async def crash() -> None:
    raise RuntimeError("secret internal detail /srv/app.py")


@post("/test/body", opt=WRITE, status_code=200)
async def echo_body(data: JSONBody[Body]) -> dict[str, str]:
    return {"name": data.name}


@get("/test/system", opt=requires(WRITE_SCOPE, claim="system_id"))
async def system_only() -> dict[str, bool]:
    return {"ok": True}


@get("/test/health-json")
async def health_json(request: Request) -> object:
    return json_response(await database(request).value("admin.healthcheck"))


TEST_ROUTES = [raise_sqlstate, crash, echo_body, system_only, health_json]


@pytest.fixture
def app_client(fresh_database):
    app = create_app(TEST_SETTINGS, as_app(fresh_database))
    for route in TEST_ROUTES:
        app.register(route)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def assert_error(response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message"}
    assert fragment in body["message"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("sqlstate", "status"),
    [("EN400", 400), ("EN403", 403), ("EN404", 404), ("EN409", 409), ("EN422", 422), ("23505", 409), ("23503", 422)],
)
def test_sqlstates_from_functions_map_to_statuses_with_the_database_message(app_client, sqlstate, status):
    response = app_client.get(f"/test/raise/{sqlstate}", headers=auth())
    assert_error(response, status, f"raised {sqlstate}")


def test_statement_timeout_is_503(app_client):
    assert_error(app_client.get("/test/raise/57014", headers=auth()), 503, "statement timeout")


def test_missing_token_is_401_with_www_authenticate(app_client):
    response = app_client.get("/test/raise/EN400")
    assert_error(response, 401, "")
    assert response.headers["www-authenticate"] == "Bearer"


def test_bad_token_is_401(app_client):
    assert_error(app_client.get("/test/raise/EN400", headers={"Authorization": "Bearer nonsense"}), 401, "token")


def test_the_caller_is_checked_before_the_request_itself(app_client):
    assert_error(app_client.get("/test/raise/EN400?verbose=1"), 401, "")
    assert_error(app_client.request("GET", "/test/raise/EN400", content=b"{}"), 401, "")
    assert_error(app_client.post("/test/body", content=b"{not json"), 401, "")
    assert_error(app_client.post("/test/body", content=b"{not json", headers=auth(READ_SCOPE)), 403, WRITE_SCOPE)


def test_missing_scope_is_403(app_client):
    assert_error(app_client.get("/test/raise/EN400", headers=auth(WRITE_SCOPE)), 403, READ_SCOPE)


def test_missing_claim_is_403(app_client):
    assert_error(app_client.get("/test/system", headers=auth()), 403, "system_id")
    assert app_client.get("/test/system", headers=auth(WRITE_SCOPE, system_id="sys")).json() == {"ok": True}


def test_unknown_route_is_404(app_client):
    assert_error(app_client.get("/no/such/route"), 404, "Not Found")


def test_wrong_method_is_405(app_client):
    assert_error(app_client.delete("/running"), 405, "Method Not Allowed")


def test_unknown_query_parameter_is_400(app_client):
    assert_error(app_client.get("/running?verbose=true"), 400, "verbose")


def test_json_body_on_get_is_400(app_client):
    assert_error(app_client.request("GET", "/running", content=b'{"a": 1}'), 400, "GET request takes no body")


def test_chunked_json_body_on_get_is_400(app_client):
    response = app_client.request("GET", "/running", content=iter([b'{"a": 1}']))
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 400, "GET request takes no body")


def test_get_with_an_empty_body_is_served(app_client):
    assert app_client.request("GET", "/running", content=b"").status_code == 200
    assert app_client.request("GET", "/running", content=iter([b""])).status_code == 200


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "a JSON request body is required"),
        (b"{not json", "JSON"),
        (b'{"name": 5}', "Expected `str`, got `int`"),
        (b'{"name": "x", "extra": 1}', "unknown field `extra`"),
        (b"{}", "missing required field `name`"),
        (b"[]", "Expected `object`, got `array`"),
    ],
)
def test_invalid_bodies_are_400_naming_the_problem(app_client, content, fragment):
    response = app_client.post("/test/body", content=content, headers=auth() | {"Content-Type": "application/json"})
    assert_error(response, 400, fragment)


def test_body_over_one_mebibyte_is_413(app_client):
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    assert_error(
        app_client.post("/test/body", content=big, headers=auth() | {"Content-Type": "application/json"}), 413, ""
    )


def test_unexpected_error_is_500_with_request_id_and_no_detail(app_client):
    response = app_client.get("/test/crash", headers={"X-Request-ID": "req-42"})
    assert_error(response, 500, "req-42")
    assert "secret" not in response.text and "/srv" not in response.text


def test_database_gone_is_503(app_client, pg_server, fresh_database):
    assert app_client.get("/test/health-json").status_code == 200
    drop_database(pg_server, fresh_database.rsplit("/", 1)[1])
    response = app_client.get("/test/health-json")
    assert_error(response, 503, "database is unavailable")
    assert response.headers["retry-after"] == "1"


def test_a_bad_query_value_is_named_without_internal_names(client):
    response = client.get("/dhos/v2/encounter/latest", params={"patient_id": "not-a-uuid"}, headers=auth())
    assert_error(response, 400, "query parameter 'patient_id'")
    assert "ParamType" not in response.text
