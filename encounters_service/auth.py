"""Bearer-token authentication (HMAC internal tokens, optional RS256 via JWKS) and scope checks.

The core is framework-independent; `caller_from_request` is the only Litestar glue.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import jwt

from encounters_service.settings import Settings, SettingsError

if TYPE_CHECKING:
    from litestar import Request

READ_SCOPE = "read:send_encounter"
WRITE_SCOPE = "write:send_encounter"
SCOPES = frozenset({READ_SCOPE, WRITE_SCOPE})
# What the /fhir/R4 routes require (api/fhir.py): never a scope of a token itself, but granted by
# READ_SCOPE or by a SMART on FHIR scope (smart_grants; the Caller keeps those scopes too).
FHIR_READ = "fhir:Encounter.read"
FHIR_SEARCH = "fhir:Encounter.search"
# SMART App Launch scopes that grant reading Encounters without a patient in context: v1
# `user|system/(Encounter|*).(read|*)` (read and search), v2 `user|system/(Encounter|*).<cruds>`
# (r: read, s: search; the letters in that order). `patient/…` scopes (they need a launch
# context) and v2 scopes narrowed by a query (`…rs?category=…`) grant nothing here.
_SMART_SCOPE = re.compile(r"(?:user|system)/(?:Encounter|\*)\.(read|\*|c?r?u?d?s?)")
ID_CLAIMS = ("patient_id", "device_id", "clinician_id", "system_id")
TIME_CLAIMS = ("exp", "nbf", "iat")
LEEWAY_SECONDS = 5
# A token longer than this is refused before any decoding (the tokens callers send are 0.5-2 KB).
MAX_TOKEN_BYTES = 16 * 1024
# Verified tokens are remembered (a platform service sends the same token with every request, and
# verifying it was a quarter of the service's CPU per request): up to VERIFIED_TOKENS of them and
# VERIFIED_BYTES of token text, oldest out first, each until it expires or for VERIFIED_FOR_SECONDS
# at most, so that a key removed from the JWKS document stops being accepted within that time.
# Refused tokens and tokens over CACHED_TOKEN_BYTES are not remembered (a remembered caller keeps
# only what the service reads of its token, so an entry costs about its token's length).
VERIFIED_TOKENS = 1024
VERIFIED_BYTES = 1024 * 1024
CACHED_TOKEN_BYTES = 4 * 1024
VERIFIED_FOR_SECONDS = 60
TWO_HEADERS = "more than one Authorization header"
AUTHORIZATION = b"authorization"
_CLAIM_MESSAGES = {"system_id": "this route is only for system callers (claim 'system_id')"}
_SCOPE_MESSAGES = {
    FHIR_READ: f"missing scope '{READ_SCOPE}' or a SMART scope that grants reading Encounters"
    " (system/Encounter.read, user/Encounter.r, system/*.read, …)",
    FHIR_SEARCH: f"missing scope '{READ_SCOPE}' or a SMART scope that grants searching Encounters"
    " (system/Encounter.read, user/Encounter.s, system/*.read, …)",
}

# First match wins, so subclasses come before their bases.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not yet valid"),
    (jwt.InvalidIssuerError, "invalid token issuer"),
    (jwt.InvalidAudienceError, "invalid token audience"),
    (jwt.InvalidAlgorithmError, "token algorithm is not allowed"),
    (jwt.InvalidSignatureError, "invalid token signature"),
    (jwt.DecodeError, "malformed token"),
    (jwt.PyJWKClientConnectionError, "could not fetch the identity provider's signing keys"),
    (jwt.PyJWKClientError, "no trusted signing key for this token"),
)


class AuthError(Exception):
    """401 (no usable token) or 403 (valid token, not allowed); `message` is safe to show callers."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message

    @classmethod
    def unauthorized(cls, message: str) -> AuthError:
        return cls(401, message)

    @classmethod
    def forbidden(cls, message: str) -> AuthError:
        return cls(403, message)


class ClaimTypeError(jwt.DecodeError):
    """A registered time claim that is not a JSON number."""

    def __init__(self, claim: str) -> None:
        super().__init__(f"token claim '{claim}' must be a number")


class _PyJWT(jwt.PyJWT):
    """PyJWT, but a time claim must be a JSON number: PyJWT itself takes anything int() takes
    (a numeric string, true), and the cache's expiry arithmetic then failed."""

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:  # PyJWT's documented hook
        payload = super()._decode_payload(decoded)
        for claim in TIME_CLAIMS:
            if claim in payload and not _is_number(payload[claim]):
                raise ClaimTypeError(claim)
        return payload


_JWT = _PyJWT()


def _is_number(value: object) -> bool:
    # Not bool (an int to Python, not a number to JSON); not NaN/Infinity, which json reads but JSON lacks.
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _id(claims: Mapping[str, Any], name: str) -> str | None:
    """The claim as a caller id: only a non-empty string counts (docs/api.md); one that
    PostgreSQL text cannot hold (NUL, a lone surrogate) refuses the token."""
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        return None
    if "\x00" in value or not _encodable(value):
        raise AuthError.unauthorized(f"token claim '{name}' holds characters that cannot be stored")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Caller:
    id: str
    scopes: frozenset[str]
    # What the service reads of the custom claims: the ids that count, and can_edit_ews if true.
    claims: Mapping[str, Any]

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], scopes: frozenset[str]) -> Caller:
        ids = {name: value for name in ID_CLAIMS if (value := _id(claims, name)) is not None}
        kept = ids | ({"can_edit_ews": True} if claims.get("can_edit_ews") is True else {})
        caller_id = next(iter(ids.values()), "unknown")
        smart = {scope for scope in scopes if _SMART_SCOPE.fullmatch(scope)}
        return cls(id=caller_id, scopes=scopes & SCOPES | smart, claims=MappingProxyType(kept))

    @property
    def can_edit_ews(self) -> bool:
        return self.claims.get("can_edit_ews") is True

    @property
    def system_id(self) -> str | None:
        return self.claims.get("system_id")

    @property
    def is_system(self) -> bool:
        return self.system_id is not None


def smart_grants(scopes: frozenset[str]) -> frozenset[str]:
    """FHIR_READ and FHIR_SEARCH as the token's scopes grant them: READ_SCOPE both, SMART scopes
    as _SMART_SCOPE says."""
    granted = {FHIR_READ, FHIR_SEARCH} if READ_SCOPE in scopes else set()
    for scope in scopes:
        match = _SMART_SCOPE.fullmatch(scope)
        if match is None:
            continue
        permissions = match.group(1)
        if permissions in ("read", "*"):
            granted |= {FHIR_READ, FHIR_SEARCH}
        else:
            granted |= {FHIR_READ} if "r" in permissions else set()
            granted |= {FHIR_SEARCH} if "s" in permissions else set()
    return frozenset(granted)


class Authenticator:
    """Turns an Authorization header into a Caller, or raises a 401 AuthError.

    The verification path follows the token's header alg, but each path pins its own key and
    algorithms: HMAC tokens only ever verify with `hs_key` under `hs_algorithms`, RS256 tokens
    only with keys from the JWKS document. Anything else is rejected.
    """

    def __init__(self, settings: Settings, *, jwks_client: jwt.PyJWKClient | None = None) -> None:
        if settings.jwks_url and not (settings.jwks_issuer and settings.jwks_audience):
            raise SettingsError("JWKS_URL needs JWKS_ISSUER and JWKS_AUDIENCE as well")
        self.settings = settings
        if jwks_client is None and settings.jwks_url:
            jwks_client = jwt.PyJWKClient(settings.jwks_url, cache_keys=True)
        self._jwks = jwks_client
        # token → (caller, remembered until), oldest first (an OrderedDict: popping a plain dict's
        # first entry over and over costs more each time, until it is resized).
        self._verified: OrderedDict[str, tuple[Caller, float]] = OrderedDict()
        self._verified_bytes = 0

    def authenticate(self, authorization: str | None) -> Caller:
        token = _bearer_token(authorization)
        now = time.time()
        self._forget_expired(now)
        remembered = self._verified.get(token)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        try:
            payload, metadata_claim = self._decode(token)
        except jwt.PyJWTError as error:
            raise AuthError.unauthorized(_reason(error)) from None
        caller = _caller(payload, metadata_claim)
        self._remember(token, caller, now, min(now + VERIFIED_FOR_SECONDS, payload["exp"] + LEEWAY_SECONDS))
        return caller

    def _remember(self, token: str, caller: Caller, now: float, until: float) -> None:
        self._forget(token)
        if len(token) > CACHED_TOKEN_BYTES:
            return
        self._verified[token] = (caller, until)
        self._verified_bytes += len(token)
        while len(self._verified) > VERIFIED_TOKENS or self._verified_bytes > VERIFIED_BYTES:
            self._forget(next(iter(self._verified)))  # the longest remembered

    def _forget_expired(self, now: float) -> None:
        """The oldest entries, while they have expired. Entries are kept in the order they were
        remembered, each for VERIFIED_FOR_SECONDS at most, so each is gone at most that long after
        it was remembered (and an expired one is never used meanwhile)."""
        verified = self._verified
        while verified and next(iter(verified.values()))[1] <= now:
            self._forget(next(iter(verified)))

    def _forget(self, token: str) -> None:
        if self._verified.pop(token, None) is not None:
            self._verified_bytes -= len(token)

    def _decode(self, token: str) -> tuple[dict[str, Any], str]:
        s = self.settings
        alg = jwt.get_unverified_header(token).get("alg")
        if alg in s.hs_algorithms:
            payload = _verify(token, s.hs_key, list(s.hs_algorithms), s.hs_issuer, s.audience)
            return payload, "metadata"
        if alg == "RS256" and self._jwks is not None:
            key = self._jwks.get_signing_key_from_jwt(token)
            payload = _verify(token, key, ["RS256"], s.jwks_issuer, s.jwks_audience)
            return payload, s.jwks_metadata_claim
        raise jwt.InvalidAlgorithmError


def _verify(token: str, key: Any, algorithms: list[str], issuer: str | None, audience: str | None) -> dict[str, Any]:
    return _JWT.decode(
        token,
        key,
        algorithms=algorithms,
        issuer=issuer,
        audience=audience,
        leeway=LEEWAY_SECONDS,
        options={"require": ["exp", "iss", "aud"]},
    )


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"token has no '{error.claim}' claim"
    if isinstance(error, ClaimTypeError):
        return str(error)
    return next((text for kind, text in _REASONS if isinstance(error, kind)), "invalid token")


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError.unauthorized("missing Authorization header")
    if len(authorization) > MAX_TOKEN_BYTES + len("Bearer "):
        raise AuthError.unauthorized(f"token is longer than {MAX_TOKEN_BYTES} bytes")
    if "," in authorization:  # repeated header lines joined (RFC 9110 5.3): a JWT holds no comma
        raise AuthError.unauthorized(TWO_HEADERS)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthError.unauthorized("Authorization header must be 'Bearer <token>'")
    return token


def _caller(payload: Mapping[str, Any], metadata_claim: str) -> Caller:
    claims = payload.get(metadata_claim)
    if not isinstance(claims, dict):
        raise AuthError.unauthorized(f"token claim '{metadata_claim}' is missing or not an object")
    scope = payload.get("scope", "")
    if not isinstance(scope, str):
        raise AuthError.unauthorized("token claim 'scope' must be a space-separated string")
    # ASCII spaces only (docs/api.md): "a\u00a0b" or "a\tb" is one scope, which the service does not know.
    return Caller.from_claims(claims, frozenset(scope.split(" ")))


def require(caller: Caller, scope: str, *, claim: str | None = None) -> None:
    """Raise a 403 AuthError unless the caller has `scope` (and, if given, `claim`: one the Caller
    keeps, an id claim that is a non-empty string or can_edit_ews that is true)."""
    if scope not in caller.scopes and scope not in smart_grants(caller.scopes):
        raise AuthError.forbidden(_SCOPE_MESSAGES.get(scope, f"missing scope '{scope}'"))
    if claim is not None and not caller.claims.get(claim):
        raise AuthError.forbidden(_CLAIM_MESSAGES.get(claim, f"missing claim '{claim}'"))


def mint_token(
    settings: Settings,
    *,
    scopes: list[str],
    claims: dict[str, Any],
    expires_in: int = 3600,
    algorithm: str = "HS512",
) -> str:
    """An internal HMAC token that this service accepts (for the CLI and tests)."""
    now = int(time.time())
    payload = {
        "iss": settings.hs_issuer,
        "aud": settings.audience,
        "iat": now,
        "exp": now + expires_in,
        "metadata": claims,
        "scope": " ".join(scopes),
    }
    return jwt.encode(payload, settings.hs_key, algorithm=algorithm)


def caller_from_request(request: Request[Any, Any, Any]) -> Caller:
    """Litestar glue: authenticate with the Authenticator kept at `app.state.authenticator`."""
    authenticator: Authenticator = request.app.state.authenticator
    # From the ASGI scope, decoded as request.headers decodes them: building request.headers (a
    # case-insensitive multidict of every header) cost more than this route needs of it.
    headers = request.scope["headers"]
    authorizations = [value.decode("latin-1") for name, value in headers if name.lower() == AUTHORIZATION]
    if len(authorizations) > 1:
        raise AuthError.unauthorized(TWO_HEADERS)
    return authenticator.authenticate(authorizations[0] if authorizations else None)
