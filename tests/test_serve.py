"""The newcomer's first command: `encounters-service serve` with no database configured starts its
own PostgreSQL, migrates, prints a working token, stops cleanly, and restarts on the same data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import port_for
import pytest

from tests.helpers import Service

STARTUP_SECONDS = 60


@pytest.fixture
def data_dir() -> Iterator[Path]:
    directory = Path(
        tempfile.mkdtemp(prefix="encounters-serve-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    )
    directory.chmod(0o755)
    yield directory / "data"
    shutil.rmtree(directory, ignore_errors=True)


def start_service(data_dir: Path, port: int) -> Service:
    """Without database settings or HS_KEY: its own PostgreSQL and the local default key."""
    return Service.start({}, "--data-dir", str(data_dir), port=port)


def test_first_run_prints_a_token_that_works_and_data_survives_a_restart(data_dir):
    port = port_for.select_random()
    base = f"http://127.0.0.1:{port}"
    unknown = f"{base}/dhos/v1/encounter/{uuid.uuid4()}"

    service = start_service(data_dir, port)
    try:
        service.wait_until_running(STARTUP_SECONDS)
        assert httpx.get(unknown).status_code == 401
    finally:
        output = service.stop()
    token = re.search(r"export TOKEN=(\S+)", output).group(1)
    curl_line = next(line.strip() for line in output.splitlines() if line.strip().startswith("curl "))

    service = start_service(data_dir, port)
    try:
        service.wait_until_running(STARTUP_SECONDS)
        response = httpx.get(unknown, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 404, response.text  # authorised; the encounter does not exist
        assert httpx.get(f"{base}/healthcheck").json()["database"] == "ok"
        pasted = subprocess.run(
            ["bash", "-c", f"export TOKEN={token}; {curl_line} --silent --show-error --fail-with-body"],
            capture_output=True,
            text=True,
            timeout=30,
        )  # the printed curl line, pasted as it is
        assert pasted.returncode == 0, pasted.stdout + pasted.stderr
        assert pasted.stdout == "[]"
    finally:
        output = service.stop()
    assert "migrations applied: none pending" in output
    assert (
        "Local PostgreSQL in" in output and "at postgresql://encounters_app@127.0.0.1:" in output
    )  # served as the app role
    assert "connected to the database as" not in output  # no warning: not a superuser, not the owner
