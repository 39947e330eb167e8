"""Prometheus metrics, served at GET /metrics: HTTP requests and their latency by route template,
the database pool, 503 answers by cause, the outbox backlog, and the relay.

`encounters-service serve` runs several worker processes and a scrape reaches one of them, so the
numbers live in prometheus_client's multiprocess mode: each process writes its own memory-mapped
files in PROMETHEUS_MULTIPROC_DIR, and the worker that answers a scrape reads and sums them all.
(Per-worker labels would not do: the worker scraped knows only its own numbers.) `serve` empties
or creates that directory before anything imports prometheus_client, which chooses where values
live at import. Any other process (the tests' in-process app, `encounters-service relay`) keeps its
numbers in memory.

A request only adds to this process's tally (plain dicts, one event loop per process); the tally
goes to prometheus_client once a second and before each scrape, so a scrape may show the other
workers' requests of the last second a second later.
"""

from __future__ import annotations

import asyncio
import glob
import os
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import msgspec
import psycopg
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from encounters_service.background import in_background
from encounters_service.db import Database

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS_DIR = os.environ.get(MULTIPROCESS_DIR_ENV)  # read at import, as prometheus_client does
# The text format every scraper reads (these names need none of version 1.0.0's UTF-8 quoting);
# Litestar adds "; charset=utf-8".
CONTENT_TYPE = "text/plain; version=0.0.4"
PUBLISH_INTERVAL_S = 1.0
# From a get by id (0.5 ms) to the census (30 ms) and the statement timeout (5 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Label values come from bounded sets only: a route template, never a raw path.
UNMATCHED = "unmatched"  # the route of a request that matched none (404, 405)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"

disable_created_metrics()  # no `_created` series beside each counter (multiprocess mode has none either)

REQUESTS = Counter(
    "encounters_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
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
# From psycopg_pool's get_stats() in every worker, once a second; summed over the workers alive.
POOL_GAUGES = {
    stat: Gauge(name, documentation, multiprocess_mode="livesum")
    for stat, name, documentation in (
        ("pool_size", "encounters_db_pool_connections", "Open database connections, busy or idle"),
        ("pool_available", "encounters_db_pool_idle", "Idle database connections"),
        ("requests_waiting", "encounters_db_pool_waiting", "Requests waiting for a database connection"),
        ("pool_max", "encounters_db_pool_max", "Connections the pools may open at most"),
    )
}
# Reads on hot standbys (standbys.py): where each read that may run on a standby ran, and why not
# there; each standby's lag and whether it is used, as the worse of the workers' last watches.
READS = Counter(
    "encounters_db_reads",
    "Reads of the routes that may run on a standby, by where they ran: standby (fresh) or primary"
    " (no_fresh_standby, before_write: no standby had replayed the caller's X-Encounters-LSN yet,"
    " standby_failed: the read failed there and ran again on the primary)",
    ["served_by", "reason"],
)
STANDBY_LAG = Gauge(
    "encounters_db_standby_lag_seconds",
    "How far behind the primary each standby was at the last watch (+Inf: unreachable or over 10 s)",
    ["standby"],
    multiprocess_mode="livemax",
)
STANDBY_USABLE = Gauge(
    "encounters_db_standby_usable",
    "1 if reads run on the standby (within READ_MAX_LAG_MS and answering), 0 if they go to the primary",
    ["standby"],
    multiprocess_mode="livemin",
)
# Their own registry, so that `encounters-service relay` (RELAY_METRICS_PORT) serves these alone.
RELAY_REGISTRY = CollectorRegistry()
RELAY_PUBLISHED = Counter(
    "encounters_relay_published",
    "Outbox messages published: confirmed by the broker and marked",
    registry=RELAY_REGISTRY,
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


class _Tally:
    """This process's requests since the last publish(), in plain dicts. prometheus_client's own
    calls cost 2-7 µs each (a lock; in multiprocess mode also a getpid() and a write to the
    mapped file), three per request; adding to a dict costs a fraction of a microsecond, and the
    totals go to prometheus_client once a second and before each scrape (bench/metrics_overhead.py)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}  # [sum, count per bucket…, count above the last]

    def add(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        latency = self.latency.get((route, method))
        if latency is None:
            latency = self.latency[route, method] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        latency[0] += seconds
        latency[1 + bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bucket whose bound >= seconds

    def publish(self) -> None:
        requests, self.requests = self.requests, {}
        latency, self.latency = self.latency, {}
        for (route, method, status), count in requests.items():
            REQUESTS.labels(route, method, str(status)).inc(count)
        for (route, method), (total, *counts) in latency.items():
            # Many observations at once: prometheus_client has no public call for it.
            child = LATENCY.labels(route, method)
            child._sum.inc(total)
            for bucket, observed in zip(child._buckets, counts, strict=True):
                if observed:
                    bucket.inc(observed)


_TALLY = _Tally()


def count_request(scope: Scope, status: int, seconds: float) -> None:
    """Count and time one HTTP request (its scope, as the outermost middleware got it) by route
    template, method and status. The app calls it from the request log's middleware
    (logs.request_logging), which already notes each answer's status and time: a middleware of
    its own did both again, with a wrapper around `send`, for every request."""
    if scope["type"] != ScopeType.HTTP:  # never: both middlewares count HTTP requests only
        return
    method = scope["method"]
    # Litestar puts the matched route's template (path parameters as {name}) in the scope.
    _TALLY.add(
        scope.get("path_template") or UNMATCHED,
        method if method in METHODS else OTHER_METHOD,
        status,
        seconds,
    )


def instrument(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: count and time each HTTP request by route template, method and status
    (count_request, as a middleware of its own: bench/metrics_overhead.py measures it)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
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
            count_request(scope, status, time.perf_counter() - started)

    return middleware


def publish(pool: AsyncConnectionPool) -> None:
    """This process's numbers to prometheus_client: the requests tallied, the pool's state now."""
    _TALLY.publish()
    stats = pool.get_stats()
    for key, gauge in POOL_GAUGES.items():
        gauge.set(stats.get(key, 0))


@asynccontextmanager
async def publishing(pool: AsyncConnectionPool) -> AsyncIterator[None]:
    """publish() every PUBLISH_INTERVAL_S for the duration of the block (an app lifespan), and at
    its end: a scrape, whichever worker answers it, shows every worker's numbers of a second ago."""

    async def keep_publishing() -> None:
        while True:
            publish(pool)
            await asyncio.sleep(PUBLISH_INTERVAL_S)

    async with in_background(keep_publishing(), "metrics"):
        yield
    publish(pool)


class _Collected:
    """Metric families read for one scrape, in the shape generate_latest takes."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def _outbox_families(db: Database) -> list[Metric]:
    """The outbox backlog, from the database as /healthcheck reads it; `encounters_database_up` 0
    (and no outbox numbers) when the database does not answer, so that the scrape still succeeds."""
    up = GaugeMetricFamily("encounters_database_up", "1 if the database answered this scrape's query, else 0")
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
    publish(db.pool)
    collected = _Collected(await _outbox_families(db))
    if MULTIPROCESS_DIR:
        _forget_dead_processes(MULTIPROCESS_DIR)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, MULTIPROCESS_DIR)
        return generate_latest(registry) + generate_latest(collected)
    return generate_latest(REGISTRY) + generate_latest(RELAY_REGISTRY) + generate_latest(collected)
