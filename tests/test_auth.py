"""Token matrix for encounters_service.auth: pure unit tests, no database, no network."""

import time
from dataclasses import replace
from types import SimpleNamespace

import jwt
import pytest

from encounters_service import auth
from encounters_service.auth import (
    LEEWAY_SECONDS,
    READ_SCOPE,
    VERIFIED_FOR_SECONDS,
    WRITE_SCOPE,
    Authenticator,
    AuthError,
    Caller,
    caller_from_request,
    mint_token,
    require,
)
from encounters_service.settings import SettingsError, load_settings
from tests.helpers import (
    IDP_PUBLIC_PEM,
    JWKS_SETTINGS,
    ROGUE_KEY,
    TEST_SETTINGS,
    hand_token,
    hs_payload,
    hs_token,
    jwks_client,
    rs_payload,
    rs_token,
)

SETTINGS = TEST_SETTINGS
KEY = SETTINGS.hs_key
HS = Authenticator(SETTINGS)
HS512_ONLY = Authenticator(replace(SETTINGS, hs_algorithms=("HS512",)))
WITH_JWKS = Authenticator(JWKS_SETTINGS, jwks_client=jwks_client())


def bearer(token: str) -> str:
    return f"Bearer {token}"


def auth_error(action) -> AuthError:
    with pytest.raises(AuthError) as caught:
        action()
    return caught.value


@pytest.mark.parametrize("algorithm", ["HS512", "HS384", "HS256"])
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_valid_hmac_token_gives_caller(algorithm, scheme):
    token = mint_token(
        SETTINGS,
        scopes=[READ_SCOPE, WRITE_SCOPE],
        claims={"system_id": "sys-1", "clinician_id": "clin-1", "can_edit_ews": True},
        algorithm=algorithm,
    )
    caller = HS.authenticate(f"{scheme} {token}")
    assert caller.id == "clin-1"
    assert caller.scopes == {READ_SCOPE, WRITE_SCOPE}
    assert caller.claims["system_id"] == "sys-1"
    assert (caller.can_edit_ews, caller.system_id, caller.is_system) == (True, "sys-1", True)


def test_missing_scope_claim_means_no_scopes():
    assert HS.authenticate(bearer(hs_token(scope=None))).scopes == frozenset()


def test_scopes_split_on_ascii_spaces_and_only_the_services_own_are_kept():
    scope = f" openid {READ_SCOPE}  profile\t{WRITE_SCOPE}"
    assert HS.authenticate(bearer(hs_token(scope=scope))).scopes == {READ_SCOPE}


@pytest.mark.parametrize(
    ("claims", "expected_id"),
    [
        ({"system_id": "s", "clinician_id": "c", "device_id": "d", "patient_id": "p"}, "p"),
        ({"system_id": "s", "clinician_id": "c", "device_id": "d"}, "d"),
        ({"system_id": "s", "clinician_id": "c"}, "c"),
        ({"system_id": "s"}, "s"),
        ({"patient_id": "", "device_id": None, "system_id": "s"}, "s"),
        ({"patient_id": False, "device_id": 0, "clinician_id": {"a": 1}, "system_id": "s"}, "s"),
        ({"patient_id": ["p"], "system_id": True}, "unknown"),
        ({"other": "x"}, "unknown"),
    ],
)
def test_caller_id_precedence(claims, expected_id):
    assert Caller.from_claims(claims, frozenset()).id == expected_id


@pytest.mark.parametrize(
    ("claims", "can_edit_ews", "system_id"),
    [
        ({"can_edit_ews": "true", "system_id": ""}, False, None),
        ({"can_edit_ews": False}, False, None),
        ({"can_edit_ews": 1, "system_id": 1}, False, None),
    ],
)
def test_caller_flags_need_real_values(claims, can_edit_ews, system_id):
    caller = Caller.from_claims(claims, frozenset())
    assert (caller.can_edit_ews, caller.system_id, caller.is_system) == (can_edit_ews, system_id, False)


def test_valid_rs256_token_via_jwks():
    caller = WITH_JWKS.authenticate(bearer(rs_token(scope=f"{WRITE_SCOPE} {READ_SCOPE}")))
    assert caller.id == "pat-1"
    assert caller.scopes == {READ_SCOPE, WRITE_SCOPE}


def test_hmac_tokens_still_work_with_jwks_configured():
    assert WITH_JWKS.authenticate(bearer(hs_token())).id == "clin-1"


def expect_401(authenticator: Authenticator, header: str | None, reason: str) -> None:
    error = auth_error(lambda: authenticator.authenticate(header))
    assert error.status_code == 401
    assert reason in error.message


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(None, "missing Authorization header", id="no-header"),
        pytest.param("", "missing Authorization header", id="empty-header"),
        pytest.param("Basic dXNlcjpwdw==", "must be 'Bearer <token>'", id="not-bearer"),
        pytest.param("Bearer", "must be 'Bearer <token>'", id="bearer-without-token"),
        pytest.param("Bearer a b", "must be 'Bearer <token>'", id="two-tokens"),
        pytest.param("Bearer not-a-jwt", "malformed token", id="garbage"),
        pytest.param("Bearer a.b.c, Bearer d.e.f", "more than one Authorization header", id="joined-headers"),
        pytest.param("Bearer " + "a" * 16385, "token is longer than 16384 bytes", id="oversize"),
    ],
)
def test_unusable_header_is_401(header, reason):
    expect_401(HS, header, reason)


NOW = int(time.time())
RS_CLAIM = JWKS_SETTINGS.jwks_metadata_claim


@pytest.mark.parametrize(
    ("authenticator", "token", "reason"),
    [
        pytest.param(HS, hs_token(key="other-" + KEY), "invalid token signature", id="bad-signature"),
        pytest.param(HS, hand_token({"alg": "none"}, hs_payload(), None), "algorithm is not allowed", id="alg-none"),
        pytest.param(HS512_ONLY, hs_token("HS256"), "algorithm is not allowed", id="hs256-outside-allow-list"),
        pytest.param(HS, rs_token(), "algorithm is not allowed", id="rs256-without-jwks"),
        pytest.param(WITH_JWKS, rs_token(key=ROGUE_KEY), "invalid token signature", id="rs256-untrusted-key"),
        pytest.param(WITH_JWKS, rs_token(kid="unknown"), "no trusted signing key", id="rs256-unknown-kid"),
        pytest.param(
            WITH_JWKS,
            hand_token({"alg": "HS256", "kid": "idp-1"}, rs_payload(), IDP_PUBLIC_PEM),
            "invalid token signature",
            id="algorithm-confusion-public-pem-as-hmac-secret",
        ),
        pytest.param(HS, hs_token(exp=NOW - 60), "token has expired", id="expired"),
        pytest.param(WITH_JWKS, rs_token(exp=NOW - 60), "token has expired", id="rs256-expired"),
        pytest.param(HS, hs_token(nbf=NOW + 86_400), "token is not yet valid", id="nbf-in-future"),
        pytest.param(HS, hs_token(exp=None), "token has no 'exp' claim", id="no-exp"),
        pytest.param(HS, hs_token(exp=str(NOW + 600)), "token claim 'exp' must be a number", id="exp-numeric-string"),
        pytest.param(HS, hs_token(iat=True), "token claim 'iat' must be a number", id="iat-true"),
        pytest.param(WITH_JWKS, rs_token(nbf=[NOW]), "token claim 'nbf' must be a number", id="rs256-nbf-list"),
        pytest.param(HS, hs_token(metadata={"device_id": "d\x00"}), "cannot be stored", id="id-with-nul"),
        pytest.param(HS, hs_token(iss="http://elsewhere/"), "invalid token issuer", id="wrong-issuer"),
        pytest.param(HS, hs_token(aud="someone-else"), "invalid token audience", id="wrong-audience"),
        pytest.param(WITH_JWKS, rs_token(iss=SETTINGS.hs_issuer), "invalid token issuer", id="rs256-wrong-issuer"),
        pytest.param(HS, hs_token(scope=[READ_SCOPE]), "'scope' must be a space-separated string", id="scope-list"),
        pytest.param(HS, hs_token(metadata=None), "'metadata' is missing", id="no-metadata"),
        pytest.param(HS, hs_token(metadata="clin-1"), "'metadata' is missing or not an object", id="metadata-str"),
        pytest.param(
            WITH_JWKS,
            rs_token(metadata={"patient_id": "p"}, **{RS_CLAIM: None}),
            f"'{RS_CLAIM}' is missing",
            id="rs256-custom-claims-under-metadata",
        ),
    ],
)
def test_unusable_token_is_401(authenticator, token, reason):
    expect_401(authenticator, bearer(token), reason)


def test_proxy_url_sets_issuer_and_audience():
    settings = load_settings({"PROXY_URL": "http://x", "HS_KEY": KEY})
    assert (settings.hs_issuer, settings.audience) == ("http://x/", "http://x/")
    authenticator = Authenticator(settings)
    token = mint_token(settings, scopes=[READ_SCOPE], claims={"device_id": "dev-1"})
    assert authenticator.authenticate(bearer(token)).id == "dev-1"
    no_slash = jwt.encode(hs_payload(iss="http://x", aud="http://x/"), KEY, algorithm="HS512")
    expect_401(authenticator, bearer(no_slash), "invalid token issuer")


def test_jwks_needs_issuer_and_audience():
    with pytest.raises(SettingsError, match="JWKS_ISSUER and JWKS_AUDIENCE"):
        Authenticator(replace(JWKS_SETTINGS, jwks_audience=None))


CALLER = Caller.from_claims({"clinician_id": "clin-1", "can_edit_ews": False}, frozenset({READ_SCOPE}))
SYSTEM = Caller.from_claims({"system_id": "sys-1"}, frozenset({WRITE_SCOPE}))


@pytest.mark.parametrize(
    ("caller", "scope", "claim", "message"),
    [
        (CALLER, WRITE_SCOPE, None, "missing scope 'write:send_encounter'"),
        (SYSTEM, READ_SCOPE, None, "missing scope 'read:send_encounter'"),
        (CALLER, READ_SCOPE, "system_id", "this route is only for system callers (claim 'system_id')"),
        (CALLER, READ_SCOPE, "can_edit_ews", "missing claim 'can_edit_ews'"),
    ],
)
def test_require_refuses_with_403(caller, scope, claim, message):
    error = auth_error(lambda: require(caller, scope, claim=claim))
    assert (error.status_code, error.message) == (403, message)


@pytest.mark.parametrize(("caller", "scope", "claim"), [(CALLER, READ_SCOPE, None), (SYSTEM, WRITE_SCOPE, "system_id")])
def test_require_allows(caller, scope, claim):
    require(caller, scope, claim=claim)


def test_caller_from_request_uses_app_authenticator():
    request = SimpleNamespace(  # the header as the ASGI scope has it: caller_from_request reads it there
        scope={"headers": [(b"host", b"x"), (b"authorization", bearer(hs_token()).encode())]},
        app=SimpleNamespace(state=SimpleNamespace(authenticator=HS)),
    )
    assert caller_from_request(request).id == "clin-1"


def counting_verifications(authenticator: Authenticator, monkeypatch) -> list[str]:
    verifications: list[str] = []
    verify = authenticator._decode
    monkeypatch.setattr(authenticator, "_decode", lambda token: verifications.append(token) or verify(token))
    return verifications


def later(monkeypatch, seconds: float) -> None:
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + seconds)


@pytest.mark.parametrize(("expires_in", "remembered_for"), [(30, 30 + LEEWAY_SECONDS), (3600, VERIFIED_FOR_SECONDS)])
def test_a_token_is_verified_once_then_again_when_it_expires_or_after_a_minute(monkeypatch, expires_in, remembered_for):
    authenticator = Authenticator(SETTINGS)
    verifications = counting_verifications(authenticator, monkeypatch)
    token = mint_token(SETTINGS, scopes=[READ_SCOPE], claims={"clinician_id": "clin-1"}, expires_in=expires_in)
    for _ in range(3):
        assert authenticator.authenticate(bearer(token)).id == "clin-1"
    later(monkeypatch, remembered_for - 1)
    authenticator.authenticate(bearer(token))
    assert len(verifications) == 1
    later(monkeypatch, 2)  # past the expiry (where PyJWT refuses it: test_unusable_token_is_401) or the minute
    authenticator.authenticate(bearer(token))  # PyJWT reads the real clock: still valid to it
    assert len(verifications) == 2


def test_a_refused_token_is_not_remembered():
    authenticator = Authenticator(SETTINGS)
    forged = hs_token(key="k" * 64)
    for _ in range(2):
        expect_401(authenticator, bearer(forged), "signature")
    assert authenticator._verified == {}


def test_remembered_tokens_are_bounded(monkeypatch):
    monkeypatch.setattr(auth, "VERIFIED_TOKENS", 3)
    authenticator = Authenticator(SETTINGS)
    tokens = [mint_token(SETTINGS, scopes=[READ_SCOPE], claims={"clinician_id": f"c{n}"}) for n in range(5)]
    for token in tokens:
        authenticator.authenticate(bearer(token))
    assert list(authenticator._verified) == tokens[2:]
