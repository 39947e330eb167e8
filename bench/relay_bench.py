"""Event relay: throughput from a backlog, and commit → broker latency.

    .venv/bin/python bench/relay_bench.py [--database-url URL] [--backlog 10000] [--latency-messages 1000]

Needs a RabbitMQ (RABBITMQ_HOST, RABBITMQ_PORT, … as for the service; default 127.0.0.1:5672
guest/guest). Uses a scratch database (on the server of --database-url, else on a throwaway
local PostgreSQL with its default, durable settings) and an exchange of its own, deleted at the
end. The relay runs as its own process (`encounters-service relay`, default settings); this
process writes outbox rows and consumes them from a queue bound to the exchange.

1. Throughput: --backlog rows (DM000007 messages over backlog/5 encounters) are written while no
   relay runs; then the relay starts. Reported: messages/s from the first message received to
   the last, and from the relay's start (connecting included).
2. Latency: the relay idles; --latency-messages rows are committed one at a time (each its own
   transaction, one every 5 ms). Reported: p50/p99/max from the commit returning to the
   consumer receiving the message (both clocks in this process), and, from the database's own
   clock, created_at → published_at (the broker's confirm).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import aio_pika
import psycopg
from psycopg.conninfo import make_conninfo

from encounters_service import migrate
from encounters_service.embedded import start_local_postgres
from encounters_service.settings import REPO_ROOT, Settings, load_settings

SCRATCH = "encounters_relay_bench"
PLATFORM_KEYS = ("dhos.DM000007", "dhos.DM000005", "dhos.34837004")
WRITE_BACKLOG = """
    INSERT INTO encounters.outbox (encounter_uuid, routing_key, body)
    SELECT e.uuid, 'dhos.DM000007', jsonb_build_object('encounter_id', e.uuid, 'n', n)
    FROM generate_series(1, %(per_encounter)s) AS n,
        (SELECT gen_random_uuid() AS uuid FROM generate_series(1, %(encounters)s)) AS e
    ORDER BY n
"""
WRITE_ONE = """
    INSERT INTO encounters.outbox (encounter_uuid, routing_key, body)
    VALUES (%(encounter)s, 'dhos.DM000007', jsonb_build_object('encounter_id', %(encounter)s::text))
    RETURNING message_id
"""
CONFIRM_LAG = """
    SELECT extract(EPOCH FROM published_at - created_at) FROM encounters.outbox WHERE id > %(after)s ORDER BY id
"""


def scratch_database(server_conninfo: str) -> str:
    with psycopg.connect(server_conninfo, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SCRATCH}")
    return make_conninfo(server_conninfo, dbname=SCRATCH)


class Consumer:
    """Receive times by message id, on an exclusive queue bound to the bench's exchange."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.received: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def __aenter__(self) -> Consumer:
        s = self.settings
        self.connection = await aio_pika.connect(
            host=s.rabbitmq_host,
            port=s.rabbitmq_port,
            login=s.rabbitmq_username,
            password=s.rabbitmq_password,
            virtualhost=s.rabbitmq_vhost,
        )
        self.channel = await self.connection.channel()
        await self.channel.set_qos(prefetch_count=1000)
        exchange = await self.channel.declare_exchange(s.rabbitmq_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        for key in PLATFORM_KEYS:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.channel.exchange_delete(self.settings.rabbitmq_exchange)
        await self.connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.received[message.message_id] = time.monotonic()
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), max(0.0, deadline - time.monotonic()))


async def start_relay(settings: Settings, conninfo: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "DATABASE_URL": conninfo,
        "RABBITMQ_EXCHANGE": settings.rabbitmq_exchange,
        "LOG_LEVEL": "WARN",  # one log line per batch would measure the terminal
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "encounters_service", "relay", env=env, cwd=REPO_ROOT
    )


async def stop_relay(relay: asyncio.subprocess.Process) -> None:
    relay.terminate()
    await relay.wait()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def describe_ms(label: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"  {label}: p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms, mean {statistics.fmean(ms):.1f} ms (n={len(ms)})"
    )


async def throughput(settings: Settings, conninfo: str, backlog: int) -> None:
    with psycopg.connect(conninfo, autocommit=True) as db:
        db.execute(WRITE_BACKLOG, {"per_encounter": 5, "encounters": backlog // 5})
    async with Consumer(settings) as consumer:
        started = time.monotonic()
        relay = await start_relay(settings, conninfo)
        try:
            await consumer.wait_for(backlog)
        finally:
            await stop_relay(relay)
    times = sorted(consumer.received.values())
    print(f"throughput, backlog of {backlog} messages, batch size {settings.relay_batch_size}:")
    print(f"  first → last message: {backlog / (times[-1] - times[0]):,.0f} messages/s ({times[-1] - times[0]:.2f} s)")
    print(
        f"  relay start → last message: {backlog / (times[-1] - started):,.0f} messages/s ({times[-1] - started:.2f} s)"
    )


async def latency(settings: Settings, conninfo: str, messages: int) -> None:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as db:
        after = (await (await db.execute("SELECT coalesce(max(id), 0) FROM encounters.outbox")).fetchone())[0]
        async with Consumer(settings) as consumer:
            relay = await start_relay(settings, conninfo)
            try:
                await asyncio.sleep(2)  # connected and idle
                committed: dict[str, float] = {}
                for _ in range(messages):
                    cursor = await db.execute(WRITE_ONE, {"encounter": uuid.uuid4()})
                    committed[str((await cursor.fetchone())[0])] = time.monotonic()
                    await asyncio.sleep(0.005)
                await consumer.wait_for(messages)
                await asyncio.sleep(0.5)  # the last marks
            finally:
                await stop_relay(relay)
        lags = [row[0] for row in await (await db.execute(CONFIRM_LAG, {"after": after})).fetchall()]
    print(f"latency, {messages} messages committed one at a time:")
    describe_ms("commit → consumer", [consumer.received[m] - t for m, t in committed.items()])
    describe_ms("created_at → published_at (database clock)", [float(lag) for lag in lags if lag is not None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server to create the scratch database on")
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--latency-messages", type=int, default=1000)
    args = parser.parse_args()
    settings = dataclasses.replace(load_settings(), rabbitmq_exchange=f"encounters-bench-{uuid.uuid4().hex[:8]}")
    with ExitStack() as stack:
        if args.database_url:
            server = args.database_url
        else:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="relay-bench-", dir="/var/tmp"))
            os.chmod(data_dir, 0o755)
            server = stack.enter_context(start_local_postgres(Path(data_dir) / "data")).conninfo
        conninfo = scratch_database(server)
        migrate.upgrade(conninfo)
        asyncio.run(throughput(settings, conninfo, args.backlog))
        asyncio.run(latency(settings, conninfo, args.latency_messages))


if __name__ == "__main__":
    main()
