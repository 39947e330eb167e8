"""Tools for the relay tests: a consumer on the test's exchange, a proxy to cut the broker off,
outbox rows written with plain SQL, and waiting for a condition."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import aio_pika
import psycopg
from psycopg.types.json import Jsonb

from encounters_service.relay import Relay, relay_in_background

BROKER_HOST, BROKER_PORT = "127.0.0.1", 5672
PLATFORM_KEYS = ("dhos.DM000007", "dhos.DM000005", "dhos.34837004")
TIMEOUT_S = 10.0

# One of each shape in SPEC.md's event table, about one encounter.
ENCOUNTER = uuid.uuid4()
MESSAGES = [
    (ENCOUNTER, "dhos.DM000007", {"encounter_id": str(ENCOUNTER)}),
    (
        ENCOUNTER,
        "dhos.34837004",
        {
            "event_type": "encounter_modified",
            "event_data": {"clinician_id": "c-1", "encounter_id": str(ENCOUNTER), "modifications": {"spo2_scale": 2}},
        },
    ),
    (ENCOUNTER, "dhos.DM000005", {"actions": [{"name": "process_observation_set", "data": {"encounter": {}}}]}),
]


async def eventually(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def declare_exchange(channel: aio_pika.abc.AbstractChannel, name: str) -> aio_pika.abc.AbstractExchange:
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


async def delete_exchange(name: str) -> None:
    connection = await aio_pika.connect(host=BROKER_HOST, port=BROKER_PORT)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(name)


class Consumer:
    """An exclusive, auto-deleted queue bound to the exchange with the platform's routing keys,
    like the platform's consumers; collects what arrives."""

    def __init__(self, exchange: str):
        self.exchange = exchange
        self.messages: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def __aenter__(self) -> Consumer:
        self.connection = await aio_pika.connect(host=BROKER_HOST, port=BROKER_PORT)
        channel = await self.connection.channel()
        exchange = await declare_exchange(channel, self.exchange)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in PLATFORM_KEYS:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._received, no_ack=True)
        return self

    async def _received(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.messages.append(message)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.connection.close()

    async def wait_for(self, count: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
        await eventually(lambda: len(self.messages) >= count, f"{count} messages (got {len(self.messages)})")
        return self.messages

    @property
    def bodies(self) -> list[dict]:
        return [json.loads(message.body) for message in self.messages]


class CuttableProxy:
    """A TCP proxy in front of the broker: cut() drops every connection and refuses new ones
    (an outage as the relay sees it) without touching the real broker; restore() ends it."""

    def __init__(self) -> None:
        self.up = True
        self.writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> CuttableProxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cut()
        self.server.close()
        await self.server.wait_closed()

    def cut(self) -> None:
        self.up = False
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    def restore(self) -> None:
        self.up = True

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if not self.up:
            client_writer.close()
            return
        broker_reader, broker_writer = await asyncio.open_connection(BROKER_HOST, BROKER_PORT)
        self.writers |= {client_writer, broker_writer}
        await asyncio.gather(_pipe(client_reader, broker_writer), _pipe(broker_reader, client_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def write_outbox(db: psycopg.Connection, *messages: tuple[uuid.UUID | None, str, dict]) -> list[uuid.UUID]:
    """Outbox rows (encounter, routing key, body) in one transaction; returns their message ids in order."""
    rows = db.execute(
        "INSERT INTO encounters.outbox (encounter_uuid, routing_key, body) "
        "SELECT encounter_uuid, routing_key, body FROM unnest(%s::uuid[], %s::text[], %s::jsonb[]) "
        "WITH ORDINALITY AS m (encounter_uuid, routing_key, body, n) ORDER BY n RETURNING id, message_id",
        ([m[0] for m in messages], [m[1] for m in messages], [Jsonb(m[2]) for m in messages]),
    ).fetchall()
    return [message_id for _, message_id in sorted(rows)]


def waiting(db: psycopg.Connection) -> int:
    return db.execute("SELECT count(*) FROM encounters.outbox WHERE published_at IS NULL").fetchone()[0]


@asynccontextmanager
async def running(*relays: Relay) -> AsyncIterator[None]:
    """The relays run side by side for the duration of the block, then stop."""
    async with AsyncExitStack() as stack:
        for relay in relays:
            await stack.enter_async_context(relay_in_background(relay))
        yield
