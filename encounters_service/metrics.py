"""Prometheus metrics, served at GET /metrics: HTTP requests and their latency by route template,
the database pool, 503 answers by cause, the outbox backlog, and the relay.

`encounters-service serve` runs several worker processes and a scrape reaches one of them, so the
numbers live in prometheus_client's multiprocess mode: each process writes its own memory-mapped
files in PROMETHEUS_MULTIPROC_DIR, and the worker that answers a scrape reads and sums them all.
(Per-worker labels would not do: the worker scraped knows only its own numbers.) `serve` empties
or creates that directory before anything imports prometheus_client, which chooses where values
live at import. Any other process (the tests' in-process app, `encounters-service relay`) keeps its
numbers in memory.
"""

from __future__ import annotations

import asyncio
import glob
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import msgspec
import psycopg
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from encounters_service.db import Database

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS_DIR = os.environ.get(MULTIPROCESS_DIR_ENV)  # read at import, as prometheus_client does
CONTENT_TYPE = CONTENT_TYPE_LATEST
POOL_SAMPLE_INTERVAL_S = 1.0
# From a get by id (0.5 ms) to the census (30 ms) and the statement timeout (5 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Label values come from bounded sets only: a route template, never a raw path.
UNMATCHED = "unmatched"  # the route of a request that matched none (404, 405)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"

REQUESTS = Counter(
    "encounters_http_requests", "HTTP requests answered, by route template, method and status", ["route", "method", "status"]
)
LATENCY = Histogram(
    "encounters_http_request_duration_seconds",
    "Time from receiving a request to the end of its answer, by route template and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
UNAVAILABLE = Counter(
    "encounters_http_unavailable",
    "503 answers by cause: statement_timeout, database_unavailable, pool_timeout (no connection in time)",
    ["cause"],
)
# Sampled from psycopg_pool's get_stats() in every worker; summed over the workers alive.
POOL_GAUGES = {
    "pool_size": Gauge("encounters_db_pool_connections", "Open database connections, busy or idle", multiprocess_mode="livesum"),
    "pool_available": Gauge("encounters_db_pool_idle", "Idle database connections in the pools", multiprocess_mode="livesum"),
    "requests_waiting": Gauge(
        "encounters_db_pool_waiting", "Requests waiting for a database connection", multiprocess_mode="livesum"
    ),
    "pool_max": Gauge("encounters_db_pool_max", "Connections the pools may open at most", multiprocess_mode="livesum"),
}
# Their own registry, so that `encounters-service relay` (RELAY_METRICS_PORT) serves these alone.
RELAY_REGISTRY = CollectorRegistry()
RELAY_PUBLISHED = Counter(
    "encounters_relay_published", "Outbox messages published: confirmed by the broker and marked", registry=RELAY_REGISTRY
)
RELAY_FAILURES = Counter(
    "encounters_relay_failures",
    "Relay sessions ended by a failure (the batch in hand is published again), by cause: unavailable"
    " (the broker or the database away) or error (anything else; logged with its traceback)",
    ["cause"],
    registry=RELAY_REGISTRY,
)
RELAY_RECONNECTS = Counter(
    "encounters_relay_reconnects", "Times the relay connected again after a failure", registry=RELAY_REGISTRY
)


def instrument(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: count and time each HTTP request by route template, method and status."""
    series: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # the labelled children, looked up once

    def observe(route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = series.get(key)
        if children is None:
            children = series[key] = (REQUESTS.labels(route, method, str(status)), LATENCY.labels(route, method))
        children[0].inc()
        children[1].observe(seconds)

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_noting_status)
        finally:
            method = scope["method"]
            # Litestar puts the matched route's template (path parameters as {name}) in the scope.
            observe(
                scope.get("path_template") or UNMATCHED,
                method if method in METHODS else OTHER_METHOD,
                status,
                time.perf_counter() - started,
            )

    return middleware


def sample_pool(pool: AsyncConnectionPool) -> None:
    stats = pool.get_stats()
    for key, gauge in POOL_GAUGES.items():
        gauge.set(stats.get(key, 0))


@asynccontextmanager
async def pool_sampling(pool: AsyncConnectionPool) -> AsyncIterator[None]:
    """Sample the pool's gauges every POOL_SAMPLE_INTERVAL_S for the duration of the block (an app
    lifespan): cheaper than on every request, and every worker's numbers are there for a scrape."""

    async def keep_sampling() -> None:
        while True:
            sample_pool(pool)
            await asyncio.sleep(POOL_SAMPLE_INTERVAL_S)

    task = asyncio.create_task(keep_sampling(), name="pool metrics")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


class _Collected:
    """Metric families read for one scrape, in the shape generate_latest takes."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def _outbox_families(db: Database) -> list[Metric]:
    """The outbox backlog, from the database as /healthcheck reads it; `encounters_database_up` 0
    (and no outbox numbers) when the database does not answer, so that the scrape still succeeds."""
    up = GaugeMetricFamily("encounters_database_up", "1 if the database answered this scrape's outbox query, else 0")
    try:
        health = msgspec.json.decode(await db.value("admin.healthcheck"))
    except (psycopg.Error, PoolTimeout):
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    waiting = GaugeMetricFamily("encounters_outbox_waiting", "Events in the outbox not yet published")
    waiting.add_metric([], health["outbox_waiting"])
    oldest = GaugeMetricFamily(
        "encounters_outbox_oldest_age_seconds", "Age of the oldest event not yet published (0 when none waits)"
    )
    oldest.add_metric([], health["outbox_oldest_age_seconds"] or 0)
    return [up, waiting, oldest]


def _forget_dead_processes(directory: str) -> None:
    """Drop the pool gauges of worker processes that are gone (granian replaces its workers on
    SIGHUP), whose last samples would still be summed: prometheus_client leaves that to the parent
    process (mark_process_dead), and granian's is not ours."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = int(path.rsplit("_", 1)[1].removesuffix(".db"))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)
        except PermissionError:  # alive, another user's
            pass


async def scrape(db: Database) -> bytes:
    """The text exposition of every metric, this process's and (multiprocess mode) the others'."""
    sample_pool(db.pool)
    collected = _Collected(await _outbox_families(db))
    if MULTIPROCESS_DIR:
        _forget_dead_processes(MULTIPROCESS_DIR)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, MULTIPROCESS_DIR)
        return generate_latest(registry) + generate_latest(collected)
    return generate_latest(REGISTRY) + generate_latest(RELAY_REGISTRY) + generate_latest(collected)
