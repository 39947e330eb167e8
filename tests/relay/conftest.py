"""A real RabbitMQ on 127.0.0.1:5672 for the relay tests: the one running, or one started here
when the rabbitmq-server binary exists; otherwise the tests that need it are skipped, with why."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import aio_pika
import pytest

from encounters_service.settings import Settings
from tests.helpers import TEST_SETTINGS
from tests.relay.support import BROKER_HOST, BROKER_PORT, delete_exchange

START_SECONDS = 60


def _broker_listening() -> bool:
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=1).close()
        return True
    except OSError:
        return False


async def _broker_answers() -> bool:
    try:
        connection = await aio_pika.connect(host=BROKER_HOST, port=BROKER_PORT, timeout=2)
    except Exception:  # starting up: refused, reset, or not yet accepting logins
        return False
    await connection.close()
    return True


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[None]:
    if _broker_listening():
        yield
        return
    server = shutil.which("rabbitmq-server")
    if server is None:
        pytest.skip(f"no RabbitMQ on {BROKER_HOST}:{BROKER_PORT} and no rabbitmq-server binary to start one")
    subprocess.run([server, "-detached"], check=True, capture_output=True)
    deadline = time.monotonic() + START_SECONDS
    while not asyncio.run(_broker_answers()):
        if time.monotonic() > deadline:
            pytest.fail(f"rabbitmq-server -detached did not answer on {BROKER_HOST}:{BROKER_PORT} in {START_SECONDS} s")
        time.sleep(0.5)
    yield
    subprocess.run([shutil.which("rabbitmqctl") or "rabbitmqctl", "stop"], check=False, capture_output=True)


@pytest.fixture
def relay_settings(rabbitmq: None) -> Iterator[Settings]:
    """Test settings on the real broker with an exchange of the test's own, deleted afterwards."""
    exchange = f"encounters-test-{uuid.uuid4().hex[:12]}"
    yield dataclasses.replace(
        TEST_SETTINGS,
        rabbitmq_host=BROKER_HOST,
        rabbitmq_port=BROKER_PORT,
        rabbitmq_exchange=exchange,
        relay_poll_interval_s=0.5,
    )
    asyncio.run(delete_exchange(exchange))
