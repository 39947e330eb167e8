"""The relay's Prometheus counters against a real RabbitMQ and PostgreSQL: published, failures by
cause, reconnects; and `encounters-service relay` serving them on RELAY_METRICS_PORT."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys

import httpx
import port_for
from prometheus_client.parser import text_string_to_metric_families

from encounters_service.metrics import RELAY_REGISTRY
from encounters_service.relay import Backoff, Relay
from encounters_service.settings import DATABASE_PARTS, REPO_ROOT
from tests.helpers import as_app
from tests.relay.support import MESSAGES, TIMEOUT_S, Consumer, CuttableProxy, eventually, running, write_outbox

FAST = Backoff(initial_s=0.05, maximum_s=0.2)


def counted(name: str, **labels: str) -> float:
    return RELAY_REGISTRY.get_sample_value(name, labels) or 0.0


def test_published_failures_and_reconnects_are_counted(db, fresh_database, relay_settings):
    before = {
        "published": counted("encounters_relay_published_total"),
        "failures": counted("encounters_relay_failures_total", cause="unavailable"),
        "reconnects": counted("encounters_relay_reconnects_total"),
    }

    def moved(what: str) -> float:
        name = {"failures": "encounters_relay_failures_total"}.get(what, f"encounters_relay_{what}_total")
        labels = {"cause": "unavailable"} if what == "failures" else {}
        return counted(name, **labels) - before[what]

    async def scenario():
        async with CuttableProxy() as proxy, Consumer(relay_settings.rabbitmq_exchange) as consumer:
            settings = dataclasses.replace(relay_settings, rabbitmq_port=proxy.port)
            async with running(Relay(settings, as_app(fresh_database), backoff=FAST)):
                write_outbox(db, *MESSAGES)
                await consumer.wait_for(len(MESSAGES))
                await eventually(lambda: moved("published") == len(MESSAGES), "the published count")
                assert (moved("failures"), moved("reconnects")) == (0, 0)
                proxy.cut()
                write_outbox(db, MESSAGES[0])  # the relay finds the broker gone when it publishes this
                await eventually(lambda: moved("failures") >= 2, "failures to be counted")
                assert moved("published") == len(MESSAGES)
                proxy.restore()
                await consumer.wait_for(len(MESSAGES) + 1)
                await eventually(lambda: moved("published") == len(MESSAGES) + 1, "the published count")
                assert moved("reconnects") == 1

    asyncio.run(scenario())


def test_the_relay_command_serves_its_counters_on_relay_metrics_port(db, fresh_database, relay_settings):
    port = port_for.select_random()
    env = {
        **{k: v for k, v in os.environ.items() if k not in DATABASE_PARTS},
        "DATABASE_URL": as_app(fresh_database),
        "RABBITMQ_HOST": relay_settings.rabbitmq_host,
        "RABBITMQ_PORT": str(relay_settings.rabbitmq_port),
        "RABBITMQ_EXCHANGE": relay_settings.rabbitmq_exchange,
        "RELAY_METRICS_PORT": str(port),
    }
    write_outbox(db, *MESSAGES)

    def published() -> float | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        except httpx.TransportError:  # not listening yet
            return None
        families = {family.name: family for family in text_string_to_metric_families(text)}
        assert set(families) == {f"encounters_relay_{name}" for name in ("published", "failures", "reconnects")}
        return families["encounters_relay_published"].samples[0].value

    async def scenario():
        async with Consumer(relay_settings.rabbitmq_exchange) as consumer:
            command = [sys.executable, "-m", "encounters_service", "relay"]
            relay = await asyncio.create_subprocess_exec(
                *command, env=env, cwd=REPO_ROOT, stderr=asyncio.subprocess.PIPE
            )
            try:
                await consumer.wait_for(len(MESSAGES))
                await eventually(lambda: published() == len(MESSAGES), "the published count on the metrics port")
            finally:
                relay.send_signal(signal.SIGTERM)
                _, log = await asyncio.wait_for(relay.communicate(), TIMEOUT_S)
            assert relay.returncode == 0, log.decode()

    asyncio.run(scenario())
