"""The token matrix through HTTP, on every /dhos route: each unusable token is 401, each valid token
without the scope or claim a route needs is 403, and a refused request changes nothing in the
database (events included). The same requests with a good token succeed, so each refusal was the
token's doing. tests/test_auth.py covers the same tokens against the Authenticator alone.

The app trusts HS512 only (so HS256 is outside its allow-list) and an identity provider's RS256
keys (JWKS, served from memory).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest
from litestar.testing import TestClient

from encounters_service.app import create_app
from encounters_service.auth import READ_SCOPE, WRITE_SCOPE, Authenticator
from tests.api.test_encounter_writes import ENCOUNTERS, create_body, snapshot
from tests.helpers import (
    IDP_PUBLIC_PEM,
    JWKS_SETTINGS,
    ROGUE_KEY,
    as_app,
    hand_token,
    hs_payload,
    hs_token,
    jwks_client,
    rs_token,
)
from tests.reliability.conftest import OPENAPI

SETTINGS = replace(JWKS_SETTINGS, hs_algorithms=("HS512",))
SCOPES = f"{READ_SCOPE} {WRITE_SCOPE}"
EVERY_CLAIM = {"system_id": "matrix-system", "can_edit_ews": True}
NOW = int(time.time())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Each would be accepted but for the one thing its name says: they all carry both scopes and every claim.
UNUSABLE = {
    "no header": {},
    "not Bearer": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
    "garbage": {"Authorization": "Bearer not.a.jwt"},
    "bad signature": bearer(hs_token(key="not-" + SETTINGS.hs_key, scope=SCOPES, metadata=EVERY_CLAIM)),
    "alg none": bearer(hand_token({"alg": "none"}, hs_payload(scope=SCOPES, metadata=EVERY_CLAIM), None)),
    "HS256 outside the allow-list": bearer(hs_token("HS256", scope=SCOPES, metadata=EVERY_CLAIM)),
    "RS256 from an untrusted key": bearer(rs_token(key=ROGUE_KEY, scope=SCOPES)),
    "RS256 public key as HMAC secret": bearer(
        hand_token({"alg": "HS512", "kid": "idp-1"}, hs_payload(scope=SCOPES, metadata=EVERY_CLAIM), IDP_PUBLIC_PEM)
    ),
    "expired": bearer(hs_token(exp=NOW - 60, scope=SCOPES, metadata=EVERY_CLAIM)),
    "not yet valid": bearer(hs_token(nbf=NOW + 86_400, scope=SCOPES, metadata=EVERY_CLAIM)),
    "wrong issuer": bearer(hs_token(iss="http://elsewhere/", scope=SCOPES, metadata=EVERY_CLAIM)),
    "wrong audience": bearer(hs_token(aud="someone-else", scope=SCOPES, metadata=EVERY_CLAIM)),
    "scopes not a string": bearer(hs_token(scope=SCOPES.split(), metadata=EVERY_CLAIM)),
    "no metadata": bearer(hs_token(scope=SCOPES, metadata=None)),
}
GOOD = bearer(hs_token(scope=SCOPES, metadata=EVERY_CLAIM))
GOOD_RS256 = bearer(rs_token(scope=SCOPES))


@dataclass(frozen=True)
class Arranged:
    """An encounter with a child and a score system history entry, to aim every route at."""

    encounter: str
    child: str
    patient: str
    location: str
    history: str
    merge_message: str  # of a merge that moved an encounter, for the undo route


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as the OpenAPI document names it
    scope: str
    send: Callable[[TestClient, Arranged, dict], object]


def route(method: str, path: str, scope: str, **request: Callable[[Arranged], object]) -> Route:
    """A request that succeeds with a good token; `request` builds its url, params and json."""

    def send(client: TestClient, arranged: Arranged, headers: dict):
        url = path.format(encounter_id=arranged.encounter, history_id=arranged.history, version=1)
        url = request["url"](arranged) if "url" in request else url
        built = {name: build(arranged) for name, build in request.items() if name != "url"}
        return client.request(method, url, headers=headers, **built)

    return Route(method, path, scope, send)


ROUTES = [
    route("GET", "/dhos/v2/encounter", READ_SCOPE, params=lambda a: {"patient_id": a.patient}),
    route("POST", "/dhos/v2/encounter", WRITE_SCOPE, json=lambda a: create_body()),
    route("GET", "/dhos/v1/encounter/{encounter_id}", READ_SCOPE),
    route(
        "DELETE",
        "/dhos/v1/encounter/{encounter_id}",
        WRITE_SCOPE,
        url=lambda a: f"/dhos/v1/encounter/{a.child}",
        json=lambda a: {"child_of_encounter_uuid": a.encounter},
    ),
    route("PATCH", "/dhos/v1/encounter/{encounter_id}", WRITE_SCOPE, json=lambda a: {"location_uuid": new_uuid()}),
    route(
        "PATCH",
        "/dhos/v1/score_system_history/{history_id}",
        WRITE_SCOPE,
        json=lambda a: {"changed_time": "2020-01-01T00:00:00Z"},
    ),
    route(
        "POST",
        "/dhos/v1/encounter/merge",
        WRITE_SCOPE,
        json=lambda a: {
            name: new_uuid()
            for name in ("child_record_uuid", "parent_record_uuid", "parent_patient_uuid", "message_uuid")
        },
    ),
    route(
        "POST", "/dhos/v1/encounter/merge/undo", WRITE_SCOPE, json=lambda a: {"message_uuid": a.merge_message}
    ),  # the first good token's undo moves the encounter back, the second's finds nothing left: both 200
    route("GET", "/dhos/v1/encounter/{encounter_id}/merge_history", READ_SCOPE),
    route("GET", "/dhos/v1/encounter/{encounter_id}/history", READ_SCOPE),
    route("GET", "/dhos/v1/encounter/{encounter_id}/history/{version}", READ_SCOPE),
    route("GET", "/dhos/v1/encounter/{encounter_id}/children", READ_SCOPE),
    route("GET", "/dhos/v2/encounters", READ_SCOPE, params=lambda a: {"modified_since": "2000-01-01"}),
    route("GET", "/dhos/v2/encounters/changes", READ_SCOPE),
    route("GET", "/dhos/v2/encounter/latest", READ_SCOPE, params=lambda a: {"patient_id": a.patient}),
    route("POST", "/dhos/v2/encounter/latest", READ_SCOPE, json=lambda a: [a.patient]),
    route("POST", "/dhos/v1/encounter/locations", READ_SCOPE, json=lambda a: [a.location]),
    route("POST", "/dhos/v1/encounter/patients", READ_SCOPE, json=lambda a: [a.patient]),
    route("POST", "/dhos/v1/encounter/locations/patient_count", READ_SCOPE, json=lambda a: [a.location]),
]


def new_uuid() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def matrix_client(fresh_database) -> Iterator[TestClient]:
    app = create_app(SETTINGS, as_app(fresh_database))
    app.state.authenticator = Authenticator(SETTINGS, jwks_client=jwks_client())
    with TestClient(app) as client:
        yield client


@pytest.fixture
def arranged(matrix_client) -> Arranged:
    def ok(response) -> dict:
        assert response.status_code == 200, response.text
        return response.json()

    parent = ok(matrix_client.post(ENCOUNTERS, json=create_body(spo2_scale=2), headers=GOOD))
    child = ok(matrix_client.post(ENCOUNTERS, json=create_body(child_of_encounter_uuid=parent["uuid"]), headers=GOOD))
    [history] = (
        parent["score_system_history"]
        or ok(matrix_client.patch(f"/dhos/v1/encounter/{parent['uuid']}", json={"spo2_scale": 1}, headers=GOOD))[
            "score_system_history"
        ]
    )
    merged = ok(matrix_client.post(ENCOUNTERS, json=create_body(), headers=GOOD))
    merge = {"child_record_uuid": merged["patient_record_uuid"], "parent_record_uuid": new_uuid()}
    merge |= {"parent_patient_uuid": new_uuid(), "message_uuid": new_uuid()}
    assert ok(matrix_client.post("/dhos/v1/encounter/merge", json=merge, headers=GOOD)) == {"total": 1}
    return Arranged(
        parent["uuid"],
        child["uuid"],
        parent["patient_uuid"],
        parent["location_uuid"],
        history["uuid"],
        merge["message_uuid"],
    )


def test_the_matrix_covers_every_guarded_route():
    guarded = {(method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item if "/dhos/" in path}
    assert {(r.method, r.path) for r in ROUTES} == guarded


def test_refused_tokens_are_401_or_403_change_nothing_and_good_tokens_then_succeed(matrix_client, arranged, db):
    before = snapshot(db)
    refusals = []
    for name, headers in UNUSABLE.items():
        refusals += [(name, r, r.send(matrix_client, arranged, headers), 401) for r in ROUTES]
    for r in ROUTES:
        other_scope = READ_SCOPE if r.scope == WRITE_SCOPE else WRITE_SCOPE
        headers = bearer(hs_token(scope=other_scope, metadata=EVERY_CLAIM))
        refusals.append(("without the scope", r, r.send(matrix_client, arranged, headers), 403))
    history_route = next(r for r in ROUTES if r.path.startswith("/dhos/v1/score_system_history"))
    headers = bearer(hs_token(scope=SCOPES, metadata={"clinician_id": "c", "can_edit_ews": True}))
    refusals.append(("without system_id", history_route, history_route.send(matrix_client, arranged, headers), 403))

    wrong = [
        (name, r.method, r.path, answer.status_code)
        for name, r, answer, status in refusals
        if answer.status_code != status
    ]
    assert wrong == []
    for _, _, answer, status in refusals:
        assert set(answer.json()) == {"message"}
        assert (answer.headers.get("www-authenticate") == "Bearer") == (status == 401)
    assert snapshot(db) == before

    for headers in (GOOD_RS256, GOOD):
        answers = {(r.method, r.path): r.send(matrix_client, arranged, headers).status_code for r in ROUTES}
        needs_system = (history_route.method, history_route.path)
        expected = {key: 403 if key == needs_system and headers is GOOD_RS256 else 200 for key in answers}
        assert answers == expected
