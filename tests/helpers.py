"""Shared test helpers: the test settings and tokens, the response forms, and the service's commands
run as subprocesses (`encounters-service serve`, `relay`, as production runs them)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

import httpx
import jwt
import port_for
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from psycopg.conninfo import make_conninfo

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE, mint_token
from encounters_service.settings import DATABASE_PARTS, DatabaseRoles, load_settings

TEST_SETTINGS = replace(
    load_settings({}),
    hs_key="test-key-that-is-long-enough-for-hs512-test-key-that-is-long-enough-for-hs512",
    hs_issuer="http://test-issuer/",
    pool_min_size=1,
    pool_max_size=4,
)


# The roles of least privilege that migration 0009 makes on the test server (the default names):
# the service under test connects as ROLES.app; fixtures that arrange data as the superuser.
ROLES = DatabaseRoles()


def as_role(conninfo: str, role: str) -> str:
    """The same database, logged in as `role` (the test server trusts loopback logins)."""
    return make_conninfo(conninfo, user=role)


def as_app(conninfo: str) -> str:
    """The same database as the service's role, which `serve`, `relay` and the app connect as."""
    return as_role(conninfo, ROLES.app)


def token(*scopes: str, **claims: object) -> str:
    return mint_token(TEST_SETTINGS, scopes=list(scopes), claims=claims)


def auth(*scopes: str, **claims: object) -> dict[str, str]:
    """Authorization header; by default read and write scopes for a clinician."""
    if not scopes:
        scopes = (READ_SCOPE, WRITE_SCOPE)
    if not claims:
        claims = {"clinician_id": "clinician-1"}
    return {"Authorization": f"Bearer {token(*scopes, **claims)}"}


# Tokens of every kind, good and bad, for the token matrices: tests/test_auth.py (the
# Authenticator alone) and tests/reliability/test_token_matrix.py (every route, through HTTP).
JWKS_SETTINGS = replace(
    TEST_SETTINGS,
    jwks_url="https://idp.test/.well-known/jwks.json",
    jwks_issuer="https://idp.test/",
    jwks_audience="encounters",
    jwks_metadata_claim="https://example.com/metadata",
)
IDP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ROGUE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
IDP_PUBLIC_PEM = IDP_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def jwks_client() -> jwt.PyJWKClient:
    """A real PyJWKClient whose JWKS document is served from memory instead of the network."""
    jwk = RSAAlgorithm.to_jwk(IDP_KEY.public_key(), as_dict=True) | {"kid": "idp-1", "use": "sig"}
    client = jwt.PyJWKClient(JWKS_SETTINGS.jwks_url)
    client.fetch_data = lambda: {"keys": [jwk]}
    return client


def hs_payload(**changes):
    """Valid internal-token claims with `changes` applied; a change to None drops the claim."""
    now = int(time.time())
    base = {
        "iss": TEST_SETTINGS.hs_issuer,
        "aud": TEST_SETTINGS.audience,
        "iat": now,
        "exp": now + 24 * 3600,  # tokens are minted at collection: valid however long the suite runs
        "metadata": {"clinician_id": "clin-1"},
        "scope": READ_SCOPE,
    }
    return {name: value for name, value in (base | changes).items() if value is not None}


def rs_payload(**changes):
    """Valid identity-provider claims, custom claims under the configured claim name."""
    defaults = {
        "iss": JWKS_SETTINGS.jwks_issuer,
        "aud": JWKS_SETTINGS.jwks_audience,
        "metadata": None,
        JWKS_SETTINGS.jwks_metadata_claim: {"patient_id": "pat-1"},
    }
    return hs_payload(**(defaults | changes))


def hs_token(algorithm="HS512", key=TEST_SETTINGS.hs_key, **changes) -> str:
    return jwt.encode(hs_payload(**changes), key, algorithm=algorithm)


def rs_token(key=IDP_KEY, kid="idp-1", **changes) -> str:
    return jwt.encode(rs_payload(**changes), key, algorithm="RS256", headers={"kid": kid})


def hand_token(header: dict, payload: dict, hmac_key: bytes | None) -> str:
    """A JWT built without pyjwt (which refuses to sign `none` or with a PEM as HMAC secret),
    HMAC-signed with the hash its header's alg names."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b""
    if hmac_key is not None:
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
        signature = hmac.new(hmac_key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


# The response forms of SPEC.md "Data": exactly these keys, datetimes as …T…:…:….mmmZ.
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
COMPACT_KEYS = frozenset(
    {
        "uuid",
        "epr_encounter_id",
        "admitted_at",
        "discharged_at",
        "deleted_at",
        "location_uuid",
        "patient_uuid",
        "patient_record_uuid",
    }
)
FULL_KEYS = COMPACT_KEYS | {
    "encounter_type",
    "score_system",
    "spo2_scale",
    "dh_product",
    "score_system_history",
    "location_history",
    "created",
}
EXPANDED_KEYS = frozenset({"created", "created_by", "modified", "modified_by"})


def forget_database_settings(monkeypatch) -> None:
    """No database configured in this test's environment (DATABASE_URL and DATABASE_*)."""
    for name in ("DATABASE_URL", *DATABASE_PARTS):
        monkeypatch.delenv(name, raising=False)


# What a served subprocess needs to accept the tokens of `auth()`.
SERVICE_ENV = {"HS_KEY": TEST_SETTINGS.hs_key, "HS_ISSUER": TEST_SETTINGS.hs_issuer}


@dataclass
class Command:
    """An `encounters-service` command running as a subprocess, as production runs it; its stdout
    and stderr go to a file (a pipe nobody reads would fill up and block it). As a context manager,
    it is stopped on exit if the test did not stop it (a failed test leaves no process behind)."""

    process: subprocess.Popen
    log: Path
    terminated: bool = False

    @classmethod
    def launch(cls, env: Mapping[str, str], *args: str, **fields: Any) -> Self:
        """Started with the test process's environment minus any database or key settings, plus `env`."""
        inherited = {k: v for k, v in os.environ.items() if k not in (*DATABASE_PARTS, "DATABASE_URL", "HS_KEY")}
        command = [sys.executable, "-m", "encounters_service", *args]
        log = Path(tempfile.mkstemp(prefix=f"encounters-{args[0]}-", suffix=".log")[1])
        with log.open("w") as output:
            process = subprocess.Popen(command, env={**inherited, **env}, stdout=output, stderr=subprocess.STDOUT)
        return cls(process, log, **fields)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.unlink(missing_ok=True)

    def output(self) -> str:
        return self.log.read_text()

    def terminate(self) -> None:
        """SIGTERM, once (a second one would cut the graceful shutdown short)."""
        if not self.terminated:
            self.process.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, seconds: float = 30) -> str:
        """SIGTERM (unless sent already), wait for exit 0; the whole output."""
        self.terminate()
        self.process.wait(timeout=seconds)
        output = self.output()
        self.log.unlink(missing_ok=True)
        assert self.process.returncode == 0, output
        return output


@dataclass(kw_only=True)
class Service(Command):
    """`encounters-service serve` on a loopback port."""

    base_url: str

    @classmethod
    def start(cls, env: Mapping[str, str], *args: str, port: int | None = None) -> Service:
        port = port or port_for.select_random()
        return cls.launch(env, "serve", "--port", str(port), *args, base_url=f"http://127.0.0.1:{port}")

    def wait_until_running(self, seconds: float = 60) -> float:
        """Seconds until GET /running answered."""
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.base_url}/running").json() == {"running": True}:
                    return time.monotonic() - started
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"the service did not answer /running in time:\n{self.output()}")
