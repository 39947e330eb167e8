"""The event relay: moves outbox rows to RabbitMQ, at least once, in order per encounter.

Each batch is one database transaction on the relay's own connection:

1. claim (relay/claim.sql): lock the oldest waiting rows with FOR UPDATE SKIP LOCKED, so that
   another relay skips them, leaving out any row whose encounter has an older row held elsewhere;
2. publish them with publisher confirms: one message after the other within an encounter (the
   next only once the broker confirmed the previous one), encounters side by side;
3. mark them published (relay/mark.sql) and commit.

A failure or a crash anywhere before the commit rolls the transaction back: the rows wait again
and are published again with the same message id (consumers de-duplicate on it). The relay
wakes on NOTIFY from the outbox insert trigger, polls slowly as a safety net, backs off
exponentially while the broker or the database is unreachable, and deletes published rows after
the retention.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aio_pika
import aiormq
import psycopg
from psycopg import AsyncConnection, AsyncRawCursor
from psycopg.rows import namedtuple_row

from encounters_service.db import use_text_for_json
from encounters_service.metrics import RELAY_FAILURES, RELAY_PUBLISHED, RELAY_RECONNECTS
from encounters_service.settings import Settings
from encounters_service.sqlfiles import load_queries

log = logging.getLogger("encounters_service.relay")

APPLICATION_NAME = "encounters-service-relay"
CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 30.0  # a whole batch; the broker blocks publishers when it runs out of memory or disk
PRUNE_EVERY_S = 600.0
PRUNE_ROWS = 10_000  # per statement
STOP_TIMEOUT_S = 40.0
# If the relay hangs mid-batch, PostgreSQL ends its transaction and the rows are released.
IDLE_IN_TRANSACTION_TIMEOUT_MS = int(2 * PUBLISH_TIMEOUT_S * 1000)
# Known ways for the broker or the database to be away; anything else is logged with its traceback.
UNAVAILABLE = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,  # publishing on a channel whose connection was lost
    OSError,
    TimeoutError,
    psycopg.OperationalError,
)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: initial, twice that, … up to maximum (seconds)."""

    initial_s: float = 0.5
    # At most 5 s between attempts: after a failover (the standby promoted once an HA manager has
    # waited 10-30 s for the old primary) the relay publishes again within 5 s of the promotion,
    # not up to 30 s later (tests/relay/test_failover.py); one refused connection every 5 s costs
    # the database or the broker nothing.
    maximum_s: float = 5.0

    def delay(self, failures: int) -> float:
        return min(self.maximum_s, self.initial_s * 2.0 ** (failures - 1)) * random.uniform(0.5, 1.0)


class Relay:
    """One relay process's loop; several may run against the same database at once."""

    def __init__(self, settings: Settings, conninfo: str, *, backoff: Backoff = Backoff()):
        self.settings = settings
        self.conninfo = conninfo
        self.backoff = backoff
        self.queries = load_queries()
        self.published = 0  # messages confirmed by the broker and marked, by this relay
        self._failures = 0  # in a row, for the backoff
        self._failed_before = False
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand, then return from run()."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Relay until stop(); survives broker and database outages."""
        if self.settings.rabbitmq_disabled:
            log.warning("RABBITMQ_DISABLED=true: the relay publishes nothing; messages wait in the outbox")
            await self._stopping.wait()
            return
        while not self._stopping.is_set():
            try:
                await self._session()
            except Exception as error:  # the relay must outlive any one failure
                self._failures += 1
                self._failed_before = True
                delay = self.backoff.delay(self._failures)
                RELAY_FAILURES.labels("unavailable" if isinstance(error, UNAVAILABLE) else "error").inc()
                if isinstance(error, UNAVAILABLE):
                    log.warning("relay interrupted (%s: %s); retrying in %.1f s", type(error).__name__, error, delay)
                else:
                    log.exception("relay failed; retrying in %.1f s", delay)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)

    async def _session(self) -> None:
        """Connect to both sides, then relay until stopped or until something fails."""
        async with AsyncExitStack() as stack:
            work = await stack.enter_async_context(await self._connect_database())
            listener = await stack.enter_async_context(await self._connect_database())
            await self._execute(listener, "relay.listen")
            broker = await stack.enter_async_context(await self._connect_broker())
            channel = await broker.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(
                self.settings.rabbitmq_exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            log.info(
                "relay connected: exchange %r on %s:%d vhost %r",
                exchange.name,
                self.settings.rabbitmq_host,
                self.settings.rabbitmq_port,
                self.settings.rabbitmq_vhost,
            )
            if self._failed_before:
                RELAY_RECONNECTS.inc()
            broker.close_callbacks.add(lambda *_: self._wake.set())  # reconnect now, not at the next message
            listening = asyncio.create_task(self._listen(listener))
            stack.push_async_callback(_cancel, listening)
            next_prune = 0.0
            while not self._stopping.is_set():
                if time.monotonic() >= next_prune:
                    await self._prune(work)
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                self._wake.clear()
                full = self.settings.relay_batch_size
                while await self._relay_batch(work, exchange) == full and not self._stopping.is_set():
                    pass  # a full batch: more may be waiting
                self._failures = 0
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.relay_poll_interval_s)
                if listening.done():
                    listening.result()  # the listening connection failed: raise its error
                if broker.is_closed and not self._stopping.is_set():
                    raise ConnectionError("the broker closed the connection")

    async def _relay_batch(self, work: AsyncConnection, exchange: aio_pika.abc.AbstractExchange) -> int:
        """Claim, publish and mark one batch in one transaction; returns how many were published."""
        started = time.perf_counter()
        async with work.transaction():
            rows = await self._execute(work, "relay.claim", batch_size=self.settings.relay_batch_size)
            if not rows:
                return 0
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await _publish(exchange, rows)
            await self.mark_published(work, [row.id for row in rows])
        self.published += len(rows)
        RELAY_PUBLISHED.inc(len(rows))
        log.info(
            "published %d messages in %.1f ms; the oldest had waited %.3f s",
            len(rows),
            (time.perf_counter() - started) * 1000,
            rows[0].waited_seconds,
            extra={"fields": {"published": len(rows), "lag_seconds": rows[0].waited_seconds}},
        )
        return len(rows)

    async def mark_published(self, work: AsyncConnection, ids: list[int]) -> None:
        """The step between the broker's confirms and the commit."""
        await self._execute(work, "relay.mark", ids=ids)

    async def _prune(self, work: AsyncConnection) -> None:
        retention = timedelta(hours=self.settings.outbox_retention_hours)
        total = 0
        while True:
            [(pruned,)] = await self._execute(work, "relay.prune", retention=retention, max_rows=PRUNE_ROWS)
            total += pruned
            if pruned < PRUNE_ROWS:
                break
        if total:
            log.info("pruned %d published messages older than %s", total, retention)

    async def _listen(self, listener: AsyncConnection) -> None:
        try:
            async for _ in listener.notifies():
                self._wake.set()
        finally:
            self._wake.set()  # let the loop see that listening stopped

    async def _execute(self, conn: AsyncConnection, name: str, **params: Any) -> list[Any]:
        query = self.queries[name]
        async with AsyncRawCursor(conn, row_factory=namedtuple_row) as cursor:
            await cursor.execute(query.sql, query.arguments(params))
            return await cursor.fetchall() if cursor.description else []

    async def _connect_database(self) -> AsyncConnection:
        options = (
            f"-c application_name={APPLICATION_NAME} -c statement_timeout={self.settings.statement_timeout_ms}"
            f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}"
        )
        conn = await AsyncConnection.connect(
            self.conninfo, autocommit=True, options=options, connect_timeout=int(CONNECT_TIMEOUT_S)
        )
        use_text_for_json(conn)
        return conn

    async def _connect_broker(self) -> aio_pika.abc.AbstractConnection:
        return await aio_pika.connect(
            host=self.settings.rabbitmq_host,
            port=self.settings.rabbitmq_port,
            login=self.settings.rabbitmq_username,
            password=self.settings.rabbitmq_password,
            virtualhost=self.settings.rabbitmq_vhost,
            timeout=CONNECT_TIMEOUT_S,
            client_properties={"connection_name": APPLICATION_NAME},
        )


async def _publish(exchange: aio_pika.abc.AbstractExchange, rows: list[Any]) -> None:
    """Publish rows (in id order) with confirms: in order within an encounter, encounters in parallel."""
    lanes: dict[object, list[Any]] = defaultdict(list)
    for row in rows:
        lanes[row.encounter_uuid or row.message_id].append(row)  # a row without encounter has no order to keep
    try:
        async with asyncio.TaskGroup() as group:
            for lane in lanes.values():
                group.create_task(_publish_in_order(exchange, lane))
    except ExceptionGroup as errors:
        raise errors.exceptions[0] from None  # one cause is enough: the whole batch is published again


async def _publish_in_order(exchange: aio_pika.abc.AbstractExchange, rows: list[Any]) -> None:
    for row in rows:
        message = aio_pika.Message(
            body=row.body.encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(row.message_id),
            app_id="encounters-service",
        )
        # Unroutable messages (no queue bound for the key) are dropped by the broker, as before.
        await exchange.publish(message, row.routing_key, mandatory=False)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError, *UNAVAILABLE):
        await task


@asynccontextmanager
async def relay_in_background(relay: Relay) -> AsyncIterator[Relay]:
    """Run the relay as a task for the duration of the block (serve --relay)."""
    task = asyncio.create_task(relay.run(), name="outbox relay")
    try:
        yield relay
    finally:
        relay.stop()
        try:
            await asyncio.wait_for(task, STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "the relay did not stop within %.0f s; its batch in hand will be published again", STOP_TIMEOUT_S
            )


async def run_until_signalled(settings: Settings, conninfo: str) -> None:
    """`encounters-service relay`: relay until SIGTERM or SIGINT, then finish the batch in hand."""
    relay = Relay(settings, conninfo)
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, relay.stop)
    await relay.run()
    log.info("relay stopped after publishing %d messages", relay.published)
