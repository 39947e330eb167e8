"""Shared test helpers: the test settings and tokens, the response forms, and the service run as
a subprocess (`encounters-service serve`, as production runs it)."""

from __future__ import annotations

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

import httpx
import port_for

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE, mint_token
from encounters_service.settings import DATABASE_PARTS, load_settings

TEST_SETTINGS = replace(
    load_settings({}),
    hs_key="test-key-that-is-long-enough-for-hs512-test-key-that-is-long-enough-for-hs512",
    hs_issuer="http://test-issuer/",
    pool_min_size=1,
    pool_max_size=4,
)


def token(*scopes: str, **claims: object) -> str:
    return mint_token(TEST_SETTINGS, scopes=list(scopes), claims=claims)


def auth(*scopes: str, **claims: object) -> dict[str, str]:
    """Authorization header; by default read and write scopes for a clinician."""
    if not scopes:
        scopes = (READ_SCOPE, WRITE_SCOPE)
    if not claims:
        claims = {"clinician_id": "clinician-1"}
    return {"Authorization": f"Bearer {token(*scopes, **claims)}"}


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


# What a served subprocess needs to accept the tokens of `auth()`.
SERVICE_ENV = {"HS_KEY": TEST_SETTINGS.hs_key, "HS_ISSUER": TEST_SETTINGS.hs_issuer}


@dataclass
class Service:
    """`encounters-service serve` running as a subprocess on a loopback port; its stdout and stderr
    go to a file (a pipe nobody reads would fill up and block it)."""

    process: subprocess.Popen
    base_url: str
    log: Path

    @classmethod
    def start(cls, env: Mapping[str, str], *args: str, port: int | None = None) -> Service:
        """Started with the test process's environment minus any database or key settings, plus `env`."""
        port = port or port_for.select_random()
        inherited = {k: v for k, v in os.environ.items() if k not in (*DATABASE_PARTS, "DATABASE_URL", "HS_KEY")}
        command = [sys.executable, "-m", "encounters_service", "serve", "--port", str(port), *args]
        log = Path(tempfile.mkstemp(prefix="encounters-serve-", suffix=".log")[1])
        with log.open("w") as output:
            process = subprocess.Popen(command, env={**inherited, **env}, stdout=output, stderr=subprocess.STDOUT)
        return cls(process, f"http://127.0.0.1:{port}", log)

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

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, seconds: float = 30) -> str:
        """SIGTERM, wait for exit 0; the whole output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=seconds)
        output = self.output()
        self.log.unlink(missing_ok=True)
        assert self.process.returncode == 0, output
        return output
