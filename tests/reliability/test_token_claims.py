"""Token claims of unexpected types, through HTTP on every /dhos route (the token matrix's routes):

- a registered time claim (`exp`, `nbf`, `iat`) that is not a JSON number → 401 naming the claim;
- a caller-id claim (`patient_id`, `device_id`, `clinician_id`, `system_id`) that is not a non-empty
  string is no id: it is skipped as an absent one, never written as "False" or "{'a': 1}", and a
  non-string `system_id` does not open the systems-only route;
- an id that PostgreSQL text cannot store (NUL, a lone surrogate) → 401;
- scopes are split on ASCII spaces only; `can_edit_ews` counts only as JSON `true`;
- two Authorization headers → 401, even when both carry the same good token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx
import jwt
import pytest

from encounters_service.auth import ID_CLAIMS, READ_SCOPE, WRITE_SCOPE
from tests.api.test_encounter_writes import ENCOUNTERS, create_body, snapshot
from tests.helpers import SERVICE_ENV, Service, as_app, auth, hs_payload
from tests.reliability.test_token_matrix import (  # noqa: F401 (arranged and matrix_client are fixtures)
    EVERY_CLAIM,
    GOOD,
    NOW,
    ROUTES,
    SCOPES,
    SETTINGS,
    arranged,
    bearer,
    matrix_client,
)

HISTORY_ROUTE = next(r for r in ROUTES if r.path.startswith("/dhos/v1/score_system_history"))
WRITES = [r for r in ROUTES if r.scope == WRITE_SCOPE]


def signed(payload_text: str) -> str:
    """An HS512 token over exactly `payload_text` (JSON that json.dumps would not write, e.g. 1e400)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps({'alg': 'HS512', 'typ': 'JWT'}).encode())}.{b64(payload_text.encode())}"
    signature = hmac.new(SETTINGS.hs_key.encode(), signing_input.encode(), hashlib.sha512).digest()
    return f"{signing_input}.{b64(signature)}"


def token_with(**changes: object) -> dict[str, str]:
    """Both scopes and every claim, with `changes` to the payload (None is kept, as JSON null)."""
    payload = hs_payload(scope=SCOPES, metadata=EVERY_CLAIM) | changes
    return bearer(jwt.encode(payload, SETTINGS.hs_key, algorithm="HS512"))


def with_metadata(metadata: dict, scope: str = SCOPES) -> dict[str, str]:
    return token_with(metadata=metadata, scope=scope)


def statuses(client, arranged, headers, routes=ROUTES) -> dict[tuple[str, str], int]:  # noqa: F811
    return {(r.method, r.path): r.send(client, arranged, headers).status_code for r in routes}


def everywhere(status: int, routes=ROUTES) -> dict[tuple[str, str], int]:
    return {(r.method, r.path): status for r in routes}


# Not a JSON number: a numeric string (a 500 on every route before), booleans, null, containers,
# and the non-JSON literals Python's json module reads (NaN, Infinity).
NOT_NUMBERS = {
    "numeric string": "{}",
    "true": True,
    "false": False,
    "null": None,
    "list": ["{}"],
    "object": {"t": "{}"},
    "NaN": float("nan"),
    "Infinity": float("inf"),
}
# A value of the claim that would be accepted were it a number.
GOOD_TIME = {"exp": NOW + 86_400, "nbf": NOW - 600, "iat": NOW - 600}  # valid however long the suite runs


def not_a_number(claim: str, value: object) -> object:
    as_text = str(GOOD_TIME[claim])
    if isinstance(value, str):
        return value.format(as_text)
    if isinstance(value, list):
        return [item.format(as_text) for item in value]
    if isinstance(value, dict):
        return {key: item.format(as_text) for key, item in value.items()}
    return value


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_a_registered_time_claim_that_is_not_a_number_is_401_on_every_route(matrix_client, arranged, db, claim):  # noqa: F811
    before = snapshot(db)
    for name, value in NOT_NUMBERS.items():
        headers = token_with(**{claim: not_a_number(claim, value)})
        answers = {(r.method, r.path): r.send(matrix_client, arranged, headers) for r in ROUTES}
        assert {key: a.status_code for key, a in answers.items()} == everywhere(401), name
        for answer in answers.values():
            assert answer.json() == {"message": f"token claim '{claim}' must be a number"}, name
            assert answer.headers["www-authenticate"] == "Bearer"
    assert snapshot(db) == before


def test_time_claims_that_are_numbers_still_work_fractions_and_out_of_range_ones_included(matrix_client, arranged):  # noqa: F811
    fractional = token_with(exp=NOW + 86_400.5, nbf=NOW - 0.25, iat=NOW - 1.5)
    assert statuses(matrix_client, arranged, fractional) == everywhere(200)
    payload = json.dumps(hs_payload(scope=SCOPES, metadata=EVERY_CLAIM, exp=123456789))
    for exp, status in (("1e400", 401), ("-1e400", 401), ("1" + "0" * 30, 200), ("1" + "0" * 5000, 401)):
        headers = bearer(signed(payload.replace("123456789", exp)))
        assert statuses(matrix_client, arranged, headers) == everywhere(status), exp[:10]


NOT_IDS = [False, True, 0, 1, 2.5, {"a": 1}, ["x"], [], {}, ""]


def written_by(db) -> set[str]:
    """Every caller id the database holds: the *_by columns and the events' clinician ids."""
    columns = db.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'encounters' AND column_name LIKE '%\\_by'"
    ).fetchall()
    found = {value for table, column in columns for (value,) in db.execute(f"SELECT {column} FROM encounters.{table}")}
    events = db.execute("SELECT body->'event_data'->>'clinician_id' FROM encounters.outbox").fetchall()
    return found | {value for (value,) in events if value is not None}


def test_caller_id_claims_that_are_not_non_empty_strings_are_skipped(matrix_client, arranged, db):  # noqa: F811
    for junk in NOT_IDS:
        junk_ids = {name: junk for name in ID_CLAIMS if name != "system_id"}
        headers = with_metadata({**junk_ids, "system_id": "claims-system", "can_edit_ews": True})
        assert statuses(matrix_client, arranged, headers) == everywhere(200), junk
        only_junk = with_metadata({**junk_ids, "system_id": junk, "can_edit_ews": True})
        expected = everywhere(200) | {(HISTORY_ROUTE.method, HISTORY_ROUTE.path): 403}
        assert statuses(matrix_client, arranged, only_junk) == expected, junk
    # Never "False", "0", "{'a': 1}", "[]"…: only the ids that were non-empty strings.
    assert written_by(db) == {"matrix-system", "claims-system", "unknown"}


def test_a_system_id_that_is_not_a_non_empty_string_does_not_open_the_systems_only_route(matrix_client, arranged, db):  # noqa: F811
    before = snapshot(db)
    for junk in NOT_IDS:
        headers = with_metadata({"clinician_id": "c", "system_id": junk, "can_edit_ews": True})
        answer = HISTORY_ROUTE.send(matrix_client, arranged, headers)
        assert answer.status_code == 403, (junk, answer.text)
        assert "system_id" in answer.json()["message"]
    assert snapshot(db) == before


UNSTORABLE = {"NUL": "clin\x00ician", "lone surrogate": "clin\ud800", "lone low surrogate": "\udc00"}


@pytest.mark.parametrize("claim", ID_CLAIMS)
def test_a_caller_id_that_postgresql_text_cannot_store_is_401_on_every_route(matrix_client, arranged, db, claim):  # noqa: F811
    before = snapshot(db)
    for name, value in UNSTORABLE.items():
        # Another, good id comes first where it can: an unstorable id refuses the token wherever it sits.
        others = {} if claim == "patient_id" else {"patient_id": "pat-1"}
        headers = with_metadata({**others, **EVERY_CLAIM, claim: value})
        answers = [r.send(matrix_client, arranged, headers) for r in ROUTES]
        assert [a.status_code for a in answers] == [401] * len(ROUTES), name
        messages = {a.json()["message"] for a in answers}
        assert messages == {f"token claim '{claim}' holds characters that cannot be stored"}
    assert snapshot(db) == before


@pytest.mark.parametrize("separator", ["\u00a0", "\t", "\n", "\r", "\u2003", ",", "\x00"])
def test_scopes_are_split_on_ascii_spaces_only(matrix_client, arranged, db, separator):  # noqa: F811
    before = snapshot(db)
    headers = with_metadata(EVERY_CLAIM, scope=separator.join([READ_SCOPE, WRITE_SCOPE]))
    assert statuses(matrix_client, arranged, headers) == everywhere(403)
    assert snapshot(db) == before


def test_runs_of_ascii_spaces_around_scopes_are_fine(matrix_client, arranged):  # noqa: F811
    headers = with_metadata(EVERY_CLAIM, scope=f"  {READ_SCOPE}   {WRITE_SCOPE} ")
    assert statuses(matrix_client, arranged, headers) == everywhere(200)


@pytest.mark.parametrize("value", [1, "true", "True", [True], {"x": True}, 1.0])
def test_only_json_true_lets_a_caller_change_the_spo2_scale(matrix_client, db, value):  # noqa: F811
    before = snapshot(db)
    headers = with_metadata({"clinician_id": "c", "can_edit_ews": value})
    answer = matrix_client.post(ENCOUNTERS, json=create_body(spo2_scale=2), headers=headers)
    assert answer.status_code == 403, answer.text
    assert snapshot(db)["encounter"] == before["encounter"]
    assert matrix_client.post(ENCOUNTERS, json=create_body(spo2_scale=2), headers=with_metadata(EVERY_CLAIM)).is_success


TWO_HEADERS = {
    "the same good token twice": [GOOD, GOOD],
    "a good token and garbage": [GOOD, bearer("not.a.jwt")],
    "garbage and a good token": [bearer("not.a.jwt"), GOOD],
}


def two_authorizations(pair: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [("Authorization", headers["Authorization"]) for headers in pair]


@pytest.mark.parametrize("name", TWO_HEADERS)
def test_two_authorization_headers_are_401_on_every_route(matrix_client, arranged, db, name):  # noqa: F811
    before = snapshot(db)
    headers = two_authorizations(TWO_HEADERS[name])
    answers = [r.send(matrix_client, arranged, headers) for r in ROUTES]
    assert [a.status_code for a in answers] == [401] * len(ROUTES)
    assert {a.json()["message"] for a in answers} == {"more than one Authorization header"}
    assert snapshot(db) == before


def test_two_authorization_headers_are_401_from_the_served_service(fresh_database):
    """The server `serve` runs, not only the test client, keeps both headers for the app to refuse."""
    service = Service.start({**SERVICE_ENV, "DATABASE_URL": as_app(fresh_database), "WEB_CONCURRENCY": "1"})
    try:
        service.wait_until_running()
        url = f"{service.base_url}{ENCOUNTERS}?patient_id={create_body()['patient_uuid']}"
        good = auth(READ_SCOPE)
        with httpx.Client() as http:
            assert http.get(url, headers=good).status_code == 200
            for pair in [[good, good], [good, {"Authorization": "Bearer not.a.jwt"}]]:
                answer = http.get(url, headers=two_authorizations(pair))
                assert (answer.status_code, answer.json()) == (401, {"message": "more than one Authorization header"})
    finally:
        service.stop()
