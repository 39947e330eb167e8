"""The relay against a real RabbitMQ and a real PostgreSQL: what arrives, in which order, how often."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import time
import uuid

import aio_pika
from litestar.testing import TestClient

from encounters_service import relay
from encounters_service.app import create_app
from encounters_service.relay import Backoff, Relay
from encounters_service.settings import REPO_ROOT
from tests.helpers import as_app
from tests.relay.crashing_relay import CRASH_EXIT_CODE
from tests.relay.support import MESSAGES, TIMEOUT_S, Consumer, CuttableProxy, eventually, running, waiting, write_outbox

FAST = Backoff(initial_s=0.05, maximum_s=0.2)


def test_each_message_arrives_with_its_key_body_and_properties(db, fresh_database, relay_settings):
    message_ids = write_outbox(db, *MESSAGES)

    async def scenario():
        async with (
            Consumer(relay_settings.rabbitmq_exchange) as consumer,
            running(Relay(relay_settings, as_app(fresh_database))),
        ):
            return await consumer.wait_for(len(MESSAGES))

    received = asyncio.run(scenario())
    assert [(m.routing_key, json.loads(m.body)) for m in received] == [(key, body) for _, key, body in MESSAGES]
    assert [m.message_id for m in received] == [str(message_id) for message_id in message_ids]
    assert {(m.content_type, m.delivery_mode) for m in received} == {
        ("application/json", aio_pika.DeliveryMode.PERSISTENT)
    }
    assert waiting(db) == 0


def test_the_relay_wakes_on_notify_rather_than_waiting_for_the_poll(db, fresh_database, relay_settings):
    settings = dataclasses.replace(relay_settings, relay_poll_interval_s=60)

    async def scenario():
        async with Consumer(settings.rabbitmq_exchange) as consumer, running(Relay(settings, as_app(fresh_database))):
            write_outbox(db, MESSAGES[0])
            await consumer.wait_for(1)  # the relay is now idle, waiting
            written = time.monotonic()
            write_outbox(db, MESSAGES[1])
            await consumer.wait_for(2)
            return time.monotonic() - written

    assert asyncio.run(scenario()) < 2


def test_broker_outage_keeps_messages_waiting_then_delivers_them_in_order(db, fresh_database, relay_settings, caplog):
    caplog.set_level(logging.INFO, logger="encounters_service.relay")
    a, b = uuid.uuid4(), uuid.uuid4()

    def numbered(encounter, n):
        return (encounter, "dhos.DM000007", {"encounter_id": str(encounter), "n": n})

    async def scenario():
        async with CuttableProxy() as proxy, Consumer(relay_settings.rabbitmq_exchange) as consumer:
            settings = dataclasses.replace(relay_settings, rabbitmq_port=proxy.port)
            async with running(Relay(settings, as_app(fresh_database), backoff=FAST)):
                write_outbox(db, numbered(a, 1))
                await consumer.wait_for(1)
                proxy.cut()
                for message in (numbered(a, 2), numbered(b, 1), numbered(a, 3), numbered(b, 2)):
                    write_outbox(db, message)  # each its own commit: writes go on while the broker is away
                await eventually(lambda: failures(caplog) >= 3, "the relay to retry a few times")
                assert (waiting(db), len(consumer.messages)) == (4, 1)
                proxy.restore()
                await consumer.wait_for(5)
                await eventually(lambda: waiting(db) == 0, "the outbox to be marked")
                return consumer.bodies

    bodies = asyncio.run(scenario())
    assert [body["n"] for body in bodies if body["encounter_id"] == str(a)] == [1, 2, 3]
    assert [body["n"] for body in bodies if body["encounter_id"] == str(b)] == [1, 2]


def failures(caplog) -> int:
    return sum("relay interrupted" in record.getMessage() for record in caplog.records)


def test_a_relay_killed_between_publish_and_mark_leaves_the_messages_to_be_sent_again(
    db, fresh_database, relay_settings
):
    message_ids = [str(message_id) for message_id in write_outbox(db, *MESSAGES)]

    async def scenario():
        async with Consumer(relay_settings.rabbitmq_exchange) as consumer:
            crashing = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.relay.crashing_relay",
                fresh_database,
                relay_settings.rabbitmq_exchange,
                cwd=REPO_ROOT,
            )
            assert await asyncio.wait_for(crashing.wait(), TIMEOUT_S) == CRASH_EXIT_CODE
            await consumer.wait_for(len(MESSAGES))
            assert waiting(db) == len(MESSAGES)  # published, confirmed, but never marked
            async with running(Relay(relay_settings, as_app(fresh_database))):
                return await consumer.wait_for(2 * len(MESSAGES))

    received = asyncio.run(scenario())
    assert [m.message_id for m in received] == message_ids + message_ids
    assert waiting(db) == 0


def test_two_relays_at_once_send_each_message_once_in_order_per_encounter(db, fresh_database, relay_settings, caplog):
    caplog.set_level(logging.INFO, logger="encounters_service.relay")
    settings = dataclasses.replace(relay_settings, relay_batch_size=25)
    encounters = [uuid.uuid4() for _ in range(40)]
    # 5 messages per encounter in runs (relays can work side by side), then 5 more interleaved
    # (each batch holds rows of encounters whose older rows the other relay may hold).
    backlog = [(e, n) for e in encounters for n in range(5)] + [(e, n) for n in range(5, 10) for e in encounters]
    relays = [Relay(settings, as_app(fresh_database)), Relay(settings, as_app(fresh_database))]

    async def scenario():
        async with Consumer(settings.rabbitmq_exchange) as consumer, running(*relays):
            await eventually(lambda: connected(caplog) == 2, "both relays to connect")
            write_outbox(db, *((e, "dhos.DM000007", {"encounter_id": str(e), "n": n}) for e, n in backlog))
            await consumer.wait_for(len(backlog))
            await eventually(lambda: waiting(db) == 0, "the outbox to be marked")
            await asyncio.sleep(0.3)  # time for any duplicate to arrive
            return consumer.messages, consumer.bodies

    messages, bodies = asyncio.run(scenario())
    assert len(messages) == len(backlog) == len({m.message_id for m in messages})
    for encounter in encounters:
        assert [b["n"] for b in bodies if b["encounter_id"] == str(encounter)] == list(range(10))
    assert all(relay.published > 0 for relay in relays)
    assert sum(relay.published for relay in relays) == len(backlog)


def connected(caplog) -> int:
    return sum("relay connected" in record.getMessage() for record in caplog.records)


def test_serve_with_relay_publishes_and_the_healthcheck_shows_the_backlog(db, fresh_database, relay_settings):
    write_outbox(db, *MESSAGES)
    db.execute("UPDATE encounters.outbox SET created_at = now() - interval '90 seconds'")
    with TestClient(create_app(relay_settings, as_app(fresh_database))) as client:
        health = client.get("/healthcheck").json()
    assert health["outbox_waiting"] == len(MESSAGES) and health["outbox_oldest_age_seconds"] >= 90

    async def scenario():
        async with Consumer(relay_settings.rabbitmq_exchange) as consumer:
            with TestClient(create_app(relay_settings, as_app(fresh_database), relay=True)) as client:
                await consumer.wait_for(len(MESSAGES))
                await eventually(lambda: client.get("/healthcheck").json()["outbox_waiting"] == 0, "an empty backlog")
                return client.get("/healthcheck").json()

    assert asyncio.run(scenario()) == {"database": "ok", "outbox_waiting": 0, "outbox_oldest_age_seconds": None}


def test_the_relay_prunes_published_messages_past_the_retention(db, fresh_database, relay_settings, monkeypatch):
    monkeypatch.setattr(relay, "PRUNE_ROWS", 1)  # one row per statement: several rounds
    write_outbox(db, *MESSAGES)
    db.execute("UPDATE encounters.outbox SET published_at = now() - interval '2 hours' WHERE id < 3")
    settings = dataclasses.replace(relay_settings, outbox_retention_hours=1)

    async def scenario():
        async with Consumer(settings.rabbitmq_exchange) as consumer, running(Relay(settings, as_app(fresh_database))):
            return await consumer.wait_for(1)

    assert [json.loads(m.body) for m in asyncio.run(scenario())] == [MESSAGES[2][2]]
    assert [row[0] for row in db.execute("SELECT id FROM encounters.outbox ORDER BY id")] == [3]


def test_with_rabbitmq_disabled_the_relay_publishes_nothing_and_messages_wait(db, fresh_database, relay_settings):
    write_outbox(db, *MESSAGES)
    settings = dataclasses.replace(relay_settings, rabbitmq_disabled=True)

    async def scenario():
        async with Consumer(settings.rabbitmq_exchange) as consumer:
            async with running(Relay(settings, as_app(fresh_database))):
                await asyncio.sleep(0.3)
            return consumer.messages

    assert asyncio.run(scenario()) == []
    assert waiting(db) == len(MESSAGES)
