"""The newcomer's first command: `encounters-service serve` with no database configured starts its
own PostgreSQL, migrates, prints a working token, stops cleanly, and restarts on the same data."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import port_for
import pytest

from encounters_service.settings import DATABASE_PARTS

STARTUP_SECONDS = 60


@pytest.fixture
def data_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="encounters-serve-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    directory.chmod(0o755)
    yield directory / "data"
    shutil.rmtree(directory, ignore_errors=True)


def start_service(data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in (*DATABASE_PARTS, "DATABASE_URL", "HS_KEY")}
    command = [sys.executable, "-m", "encounters_service", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_until_running(base: str, process: subprocess.Popen) -> float:
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_SECONDS:
        assert process.poll() is None, process.stdout.read()
        try:
            if httpx.get(f"{base}/running").json() == {"running": True}:
                return time.monotonic() - started
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the service did not answer /running in time")


def stop_service(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    return output


def test_first_run_prints_a_token_that_works_and_data_survives_a_restart(data_dir):
    port = port_for.select_random()
    base = f"http://127.0.0.1:{port}"
    unknown = f"{base}/dhos/v1/encounter/{uuid.uuid4()}"

    process = start_service(data_dir, port)
    try:
        wait_until_running(base, process)
        assert httpx.get(unknown).status_code == 401
    finally:
        output = stop_service(process)
    token = re.search(r"export TOKEN=(\S+)", output).group(1)
    assert "curl" in output

    process = start_service(data_dir, port)
    try:
        wait_until_running(base, process)
        response = httpx.get(unknown, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 404, response.text  # authorised; the encounter does not exist
        assert httpx.get(f"{base}/healthcheck").json()["database"] == "ok"
    finally:
        output = stop_service(process)
    assert "migrations applied: none pending" in output
