"""Reads on hot standbys (DATABASE_READ_URL), never staler than READ_MAX_LAG_MS, else on the primary.

Each host of DATABASE_READ_URL gets a pool of its own, so that each standby is watched and chosen
on its own (at random among the fresh ones). Every WATCH_INTERVAL_S each worker asks the primary
how far it has written its WAL, then each standby how far it has replayed it, each on a connection
of the watch's own (a pool busy with reads must not make its server look behind or away). The primary's
answers are kept for a while with the time they were asked: a standby's lag is the age of the
newest answer it has replayed past, as it holds every commit the primary held then. So measured,
the lag is never less than the real one, and at most one interval more.

A standby is used while its lag is within READ_MAX_LAG_MS and it answers. One that falls behind,
stops answering or fails a read is left out (a log line, the metrics
encounters_db_standby_usable and encounters_db_reads_total) and the read runs on the primary,
never an error; it is used again once a watch finds it fresh.

A read that carries a write's position (the X-Encounters-LSN header of every write answer) runs
on a standby only once that standby has replayed past it, else on the primary.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import AsyncConnection
from psycopg_pool import PoolTimeout

from encounters_service.background import in_background
from encounters_service.db import Database, make_pool, session_options
from encounters_service.metrics import READS, STANDBY_LAG, STANDBY_USABLE
from encounters_service.settings import Settings, standby_conninfos
from encounters_service.sqlfiles import Query, load_queries

T = TypeVar("T")

log = logging.getLogger("encounters_service.standbys")

WATCH_INTERVAL_S = 0.5
CHECK_TIMEOUT_S = 0.5  # a standby that has not answered a watch within this is unreachable
KEEP_WRITTEN_S = 10.0  # how long the primary's positions are kept: lags up to this are measured
# A read on a standby that fails with these runs again on the primary: the standby is gone or
# going (class 08, 57P01…: OperationalError), has no connection free, or cancelled the read to
# replay WAL (a recovery conflict: 40001, after db.RETRIES tries). A statement timeout (57014)
# is the read's own fault, and answered as such.
STANDBY_FAILURES = (psycopg.OperationalError, psycopg.errors.SerializationFailure, PoolTimeout)

_POSITION = re.compile(r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}")


def parse_position(text: str) -> int:
    """A WAL position as PostgreSQL writes it ('16/B374D848') → a number that orders as positions do."""
    if not _POSITION.fullmatch(text):
        raise ValueError(f"not a WAL position: {text!r}")
    high, low = text.split("/")
    return int(high, 16) << 32 | int(low, 16)


class _WatchConnection:
    """The watch's own connection to one server, made again on the next ask after any failure."""

    def __init__(self, conninfo: str, settings: Settings) -> None:
        self._conninfo = conninfo
        self._options = session_options(settings)
        self._conn: AsyncConnection | None = None

    async def ask(self, query: Query) -> Any:
        """The first column of the query's only row."""
        try:
            if self._conn is None:
                self._conn = await AsyncConnection.connect(self._conninfo, autocommit=True, options=self._options)
            cursor = await self._conn.execute(query.sql)
            row = await cursor.fetchone()
        except BaseException:  # a cancelled ask (the watch's timeout) too leaves the connection unusable
            await self.close()
            raise
        return row[0] if row else None

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with suppress(psycopg.Error):
                await conn.close()


@dataclass
class Standby:
    name: str  # host:port
    db: Database
    watch: _WatchConnection
    replayed: int = 0  # WAL position replayed, as of the last watch or read that asked
    usable: bool = False
    why: str = "not watched yet"  # why it is not used, when it is not


class Standbys:
    """The standbys of one worker, watched in the background for the duration of `watching()`."""

    def __init__(self, settings: Settings, read_url: str, primary_conninfo: str) -> None:
        self.max_lag_s = settings.read_max_lag_ms / 1000
        self.members = [
            Standby(name, Database(make_pool(settings, conninfo)), _WatchConnection(conninfo, settings))
            for name, conninfo in standby_conninfos(read_url)
        ]
        self._primary = _WatchConnection(primary_conninfo, settings)
        self._queries = load_queries()
        self._written: deque[tuple[float, int]] = deque()  # (when asked, the primary's position then)

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Open the standbys' pools (a standby that is down does not stop the service from
        starting: it is left out until it answers), watch them once, then every interval."""
        for standby in self.members:
            await standby.db.pool.open(wait=False)
        await self.watch()

        async def keep_watching() -> None:
            while True:
                await asyncio.sleep(WATCH_INTERVAL_S)
                await self.watch()

        try:
            async with in_background(keep_watching(), "standby watch"):
                yield
        finally:
            await self._primary.close()
            for standby in self.members:
                await standby.watch.close()
                await standby.db.pool.close()

    async def watch(self) -> None:
        """Ask the primary how far it has written, then each standby how far it has replayed."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                written = parse_position(await self._primary.ask(self._queries["replication.written_position"]))
        except (psycopg.Error, TimeoutError):
            pass  # the primary is away: its last positions age, and so do the standbys' lags
        else:
            self._written.append((loop.time(), written))
        while self._written and self._written[0][0] < loop.time() - KEEP_WRITTEN_S:
            self._written.popleft()
        await asyncio.gather(*(self._watch_one(standby) for standby in self.members))

    async def _watch_one(self, standby: Standby) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                replayed = await standby.watch.ask(self._queries["replication.replayed_position"])
        except (psycopg.Error, TimeoutError) as error:
            self._judge(standby, math.inf, f"unreachable ({type(error).__name__})")
            return
        if replayed is None:
            self._judge(standby, math.inf, "not a standby (promoted?)")
            return
        standby.replayed = max(standby.replayed, parse_position(replayed))
        lag = self._lag(standby.replayed)
        self._judge(standby, lag, f"{lag * 1000:.0f} ms behind the primary" if lag < math.inf else "far behind")

    def _lag(self, replayed: int) -> float:
        """Seconds since the primary had written no further than `replayed` (inf: longer than kept)."""
        now = asyncio.get_running_loop().time()
        for asked_at, written in reversed(self._written):
            if written <= replayed:
                return now - asked_at
        return math.inf

    def _judge(self, standby: Standby, lag: float, why: str) -> None:
        STANDBY_LAG.labels(standby.name).set(lag)
        self._use(standby, lag <= self.max_lag_s, why)

    def _use(self, standby: Standby, usable: bool, why: str) -> None:
        if usable != standby.usable:
            if usable:
                log.info("standby %s: used for reads", standby.name)
            else:
                log.warning("standby %s: not used for reads (%s); they go to the primary", standby.name, why)
        standby.usable, standby.why = usable, why
        STANDBY_USABLE.labels(standby.name).set(int(usable))

    def failed(self, standby: Standby, error: Exception) -> None:
        """A read failed on `standby`: leave it out until a watch finds it answering again."""
        self._use(standby, False, f"a read failed: {type(error).__name__}: {error}".strip())

    def choose(self, replayed_past: int | None) -> Standby | None:
        """A fresh standby, at random; one known to have replayed past `replayed_past` if any is."""
        fresh = [standby for standby in self.members if standby.usable]
        if replayed_past is not None:
            fresh = [standby for standby in fresh if standby.replayed >= replayed_past] or fresh
        return random.choice(fresh) if fresh else None


class StandbyReads:
    """The queries of one read route that may run on a standby: there when one is fresh (and has
    replayed past the caller's write, if given), else on the primary."""

    def __init__(self, standbys: Standbys, primary: Database, replayed_past: int | None) -> None:
        self.standbys = standbys
        self.primary = primary
        self.replayed_past = replayed_past

    async def rows(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        return await self._on_a_standby(lambda db: db.rows(name, **params))

    async def value(self, name: str, **params: Any) -> Any:
        """The first column of the only row (None when there is no row), as Database.value."""
        rows = await self.rows(name, **params)
        return rows[0][0] if rows else None

    async def large_value(self, name: str, **params: Any) -> bytes | None:
        """As Database.large_value (in pieces)."""
        return await self._on_a_standby(lambda db: db.large_value(name, **params))

    async def _on_a_standby(self, run: Callable[[Database], Awaitable[T]]) -> T:
        standby = self.standbys.choose(self.replayed_past)
        if standby is None:
            READS.labels("primary", "no_fresh_standby").inc()
        else:
            try:
                if await self._has_replayed(standby):
                    found = await run(standby.db)
                    READS.labels("standby", "fresh").inc()
                    return found
                READS.labels("primary", "before_write").inc()
            except STANDBY_FAILURES as error:
                self.standbys.failed(standby, error)
                READS.labels("primary", "standby_failed").inc()
        return await run(self.primary)

    async def _has_replayed(self, standby: Standby) -> bool:
        """Whether the standby shows the caller's write: asked again if the last answer was short of it."""
        if self.replayed_past is None or standby.replayed >= self.replayed_past:
            return True
        replayed = await standby.db.value("replication.replayed_position")
        standby.replayed = max(standby.replayed, parse_position(replayed or "0/0"))
        return standby.replayed >= self.replayed_past
