"""Connection pool and the one way Python runs SQL: a named query file with a dict of parameters.

JSON and JSONB values are not parsed in Python: the service's pool loads them as the bytes
PostgreSQL sent, which become the response body as they are (no decoding of a 4 MB census into a
str and encoding it back); plain connections (CLI, relay, tests) load them as text.
"""

from __future__ import annotations

import asyncio
import logging
import random
import select
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import psycopg
import psycopg.errors
from psycopg import AsyncConnection, AsyncRawCursor, Connection, RawCursor
from psycopg.adapt import Loader
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool

from encounters_service.settings import Settings
from encounters_service.sqlfiles import Query, load_queries

APPLICATION_NAME = "encounters-service"
# A deadlock (40P01) or a serialization failure (40001, raised by the write functions when a row
# changed patient while they waited for its lock) is run again, at most this many more times.
RETRIES = 3
RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

log = logging.getLogger("encounters_service.db")


def use_text_for_json(conn: Connection | AsyncConnection) -> None:
    for type_name in ("json", "jsonb"):
        conn.adapters.register_loader(type_name, TextLoader)


class _BytesLoader(Loader):
    def load(self, data: Any) -> bytes:
        return bytes(data)


async def _configure(conn: AsyncConnection) -> None:
    for type_name in ("json", "jsonb"):
        conn.adapters.register_loader(type_name, _BytesLoader)


def session_options(settings: Settings) -> str:
    """Settings of the service's database sessions: per-statement limit, name, no JIT (the
    compilation costs more than it saves on these short queries), and sorts of up to 16 MB in
    memory (the census sorts its 5,000 stored documents twice, about 5 MB each time: spilled to
    disk at the default 4 MB, it took twice as long). See the README's Performance section."""
    return (
        f"-c statement_timeout={settings.statement_timeout_ms} -c application_name={APPLICATION_NAME}"
        " -c jit=off -c work_mem=16MB"
    )


# Recovery after a database restart (tests/reliability/test_outage.py):
# - a connection the restart closed is found when it is taken from the pool, and replaced, with no
#   round trip for a healthy one: an idle connection has nothing to read unless the server spoke
#   (its goodbye on shutdown, or the end of the stream after a crash);
# - connection attempts back off 1, 2, 4, … s; giving up after RECONNECT_TIMEOUT_S lets the next
#   request try again at once, so the pool is back within about 2 s of the database (not minutes).
RECONNECT_TIMEOUT_S = 5.0


async def _check_if_server_spoke(conn: AsyncConnection) -> None:
    poll = select.poll()
    poll.register(conn.fileno(), select.POLLIN)
    if poll.poll(0):
        await AsyncConnectionPool.check_connection(conn)


def make_pool(settings: Settings, conninfo: str) -> AsyncConnectionPool:
    """A closed pool (open it in the app lifespan) with per-connection limits. Every query is a
    prepared statement from its first run: the service runs the same few query files all day."""
    return AsyncConnectionPool(
        conninfo,
        open=False,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        kwargs={
            "options": session_options(settings),
            "cursor_factory": AsyncRawCursor,
            "autocommit": True,
            "prepare_threshold": 0,
        },
        configure=_configure,
        check=_check_if_server_spoke,
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        timeout=settings.pool_timeout_s,
        name=APPLICATION_NAME,
    )


# The heavy reads' answers (api/encounter_reads.py) are fetched in pieces of PIECE_BYTES, one row
# each, rather than as one value. libpq reads each message into a buffer that it enlarges to fit and
# never shrinks while the connection lives: a census (one 4 MB JSON value) left each pool connection
# that carried one holding 4 MB, and the service grew with the connections that had served one.
# Measured (issue 17; PSS of the server's processes, 2 workers of 10 connections, 8 clients on the
# census, same run): 236-255 MB at the peak and 208-212 MB 30 s later, before; in pieces (and with
# cli.return_freed_memory), 177-188 MB and 151-153 MB, what the service holds after any load (16
# clients on get by id alone: 145-153 MB; 121 MB just started). The cost is CPU: per census, 7 ms
# more in PostgreSQL (26 -> 33) and 5 ms more in the service (9 -> 14), 41 censuses/s instead of 53
# on 2 cores. Closing each connection after a large answer (psycopg_pool replaces it) also freed the
# buffer, but the census on a new server process took twice as long (planning, caches: +30-40 ms).
# convert_to: the bytes of the text in UTF-8, as the client receives it; OFFSET 0 keeps the answer
# a subquery computed once (pulled up, it was converted again for each piece). The pieces are put
# in order in Python, by their start: an ORDER BY had PostgreSQL sort (copy) the 4 MB once more.
PIECE_BYTES = 64 * 1024
IN_PIECES = """SELECT start, substring(answer.bytes FROM start FOR {piece})
FROM (SELECT convert_to(({query}\n)::text, 'UTF8') AS bytes OFFSET 0) AS answer,
    generate_series(1, length(answer.bytes), {piece}) AS start"""


@lru_cache
def sql_in_pieces(sql: str) -> str:
    """A query of one value as the query of its bytes in pieces of PIECE_BYTES: rows (start, piece),
    no row when the value is NULL or there is no row."""
    return IN_PIECES.format(query=sql.rstrip().removesuffix(";"), piece=PIECE_BYTES)


class Database:
    """The queries of sql/queries, run on a pool; each call is one statement in one transaction."""

    def __init__(self, pool: AsyncConnectionPool, queries: dict[str, Query] | None = None):
        self.pool = pool
        self.queries = load_queries() if queries is None else queries

    async def rows(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        return await self._run(self.queries[name], params)

    async def _run(self, query: Query, params: dict[str, Any], *, in_pieces: bool = False) -> list[tuple[Any, ...]]:
        arguments = query.arguments(params)
        sql = sql_in_pieces(query.sql) if in_pieces else query.sql
        # getconn/putconn rather than `async with pool.connection()`: that is an async generator
        # (made, registered with the event loop, stepped twice) around `async with conn`, whose
        # exit commits or rolls back under the connection's lock, all of which an autocommit
        # connection running one statement does not need (nothing is left open after it; putconn
        # rolls back or replaces a connection in any other state). About 3% of a get by id's CPU.
        conn = await self.pool.getconn()
        try:
            attempt = 0
            while True:
                try:
                    started = time.perf_counter()
                    cursor = await conn.execute(sql, arguments, binary=in_pieces)
                    found = await cursor.fetchall()
                    if log.isEnabledFor(logging.DEBUG):  # LOG_LEVEL=DEBUG: each query file run, and its time
                        elapsed_ms = (time.perf_counter() - started) * 1000
                        log.debug("query %s: %d rows in %.2f ms", query.name, len(found), elapsed_ms)
                    return found
                except RETRYABLE as error:
                    # Safe to run again only because the connection is in autocommit and this is
                    # one statement: the failed attempt was its own transaction, rolled back whole
                    # (events included), so nothing of it remains.
                    if attempt == RETRIES:
                        raise
                    attempt += 1
                    log.info("%s: %s (SQLSTATE %s); trying again", query.name, type(error).__name__, error.sqlstate)
                    # A short random pause, so that the two sides of a conflict do not meet again.
                    await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
        finally:
            await self.pool.putconn(conn)

    async def value(self, name: str, **params: Any) -> Any:
        """The first column of the only row (None when there is no row)."""
        rows = await self.rows(name, **params)
        return rows[0][0] if rows else None

    async def large_value(self, name: str, **params: Any) -> bytes | None:
        """Database.value for a query whose one value (JSON) may be megabytes, such as the census:
        fetched in pieces of PIECE_BYTES (see there why), as the same bytes."""
        pieces = await self._run(self.queries[name], params, in_pieces=True)
        return b"".join(piece for _start, piece in sorted(pieces)) if pieces else None  # starts are unique

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
        """For the rare route whose work is several statements (each within its own statement
        timeout) in one transaction: yields a `value(name, **params)` that runs them on one
        connection; committed when the block ends, rolled back if it raises."""
        async with self.pool.connection() as conn, conn.transaction():

            async def value(name: str, **params: Any) -> Any:
                query = self.queries[name]
                cursor = await conn.execute(query.sql, query.arguments(params))
                row = await cursor.fetchone()
                return row[0] if row else None

            yield value


def run_sync(conn: Connection, query: Query, **params: Any) -> list[tuple[Any, ...]]:
    """The same as Database.rows, on a plain synchronous connection (CLI and tests)."""
    with RawCursor(conn) as cursor:
        cursor.execute(query.sql, query.arguments(params))
        return cursor.fetchall() if cursor.description else []


def connect_sync(conninfo: str, **kwargs: Any) -> Connection:
    conn = psycopg.connect(conninfo, **kwargs)
    use_text_for_json(conn)
    return conn
