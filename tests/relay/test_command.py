"""`encounters-service relay` as an operator runs it: a process configured by the environment."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from encounters_service import cli
from encounters_service.settings import DATABASE_PARTS, REPO_ROOT
from tests.helpers import as_app
from tests.relay.support import MESSAGES, TIMEOUT_S, Consumer, waiting, write_outbox


def test_relay_command_publishes_until_sigterm_then_exits_cleanly(db, fresh_database, relay_settings):
    write_outbox(db, *MESSAGES)
    env = {
        **{k: v for k, v in os.environ.items() if k not in DATABASE_PARTS},
        "DATABASE_URL": as_app(fresh_database),
        "RABBITMQ_HOST": relay_settings.rabbitmq_host,
        "RABBITMQ_PORT": str(relay_settings.rabbitmq_port),
        "RABBITMQ_EXCHANGE": relay_settings.rabbitmq_exchange,
    }

    async def scenario():
        async with Consumer(relay_settings.rabbitmq_exchange) as consumer:
            relay = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "encounters_service",
                "relay",
                env=env,
                cwd=REPO_ROOT,
                stderr=asyncio.subprocess.PIPE,
            )
            await consumer.wait_for(len(MESSAGES))
            relay.send_signal(signal.SIGTERM)
            _, log = await asyncio.wait_for(relay.communicate(), TIMEOUT_S)
            return relay.returncode, log.decode()

    returncode, log = asyncio.run(scenario())
    assert returncode == 0, log
    assert f"relay connected: exchange '{relay_settings.rabbitmq_exchange}'" in log
    assert f"relay stopped after publishing {len(MESSAGES)} messages" in log
    assert waiting(db) == 0


def test_relay_command_refuses_to_start_its_own_local_database(monkeypatch):
    for name in (*DATABASE_PARTS, "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["relay"])
    assert "serve --relay" in str(exit_info.value.code)
