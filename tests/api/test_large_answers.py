"""Large answers (the census: megabytes of JSON) come from PostgreSQL in pieces (db.py, PIECE_BYTES).

libpq keeps a connection's input buffer as large as the largest message it has received, for the
connection's life: one 4 MB value left each pool connection that carried a census holding 4 MB
(issue 17). In pieces, no message is larger than PIECE_BYTES. What these tests hold: the pieces
put together are the same bytes as the one value; no piece is larger than PIECE_BYTES; the heavy
read routes fetch their answer so; the server's processes return freed memory (cli.py).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from uuid import uuid4

import pytest

from encounters_service import cli
from encounters_service.db import PIECE_BYTES, Database, make_pool, sql_in_pieces
from encounters_service.sqlfiles import Query, parse_query
from tests.helpers import TEST_SETTINGS, as_app, auth
from tests.queries.arrange import WARD_A, insert_encounter


def query(name: str, sql: str, parameters: str = "") -> Query:
    header = f"-- {name}\n" + (f"-- Parameters:\n--   {parameters}\n" if parameters else "")
    return parse_query(name, Path(f"{name}.sql"), f"{header}-- Returns: one value\n-- Example: none\n{sql};\n")


# A JSON array of `n` strings of 2- and 3-byte UTF-8 characters (é, €) among ASCII ones, so that
# pieces end inside a character.
LARGE = query(
    "test.large",
    "SELECT json_agg(repeat('é€x', 100) || i) FROM generate_series(1, :'n'::integer) AS i",
    "n  integer  how many strings",
)
NOTHING = query("test.nothing", "SELECT NULL::json WHERE false")
NULL = query("test.null", "SELECT NULL::json")
SIZED = query("test.sized", "SELECT to_json(repeat('x', :'size'::integer - 2))", "size  integer  bytes of JSON")
QUERIES = {query.name: query for query in (LARGE, NOTHING, NULL, SIZED)}


def run(conninfo: str, work):
    """`work(database)` on a pool of the service's kind (JSON loaded as bytes), as the app role."""

    async def main():
        pool = make_pool(TEST_SETTINGS, as_app(conninfo))
        await pool.open(wait=True)
        try:
            return await work(Database(pool, QUERIES))
        finally:
            await pool.close()

    return asyncio.run(main())


def test_a_large_value_in_pieces_is_the_same_bytes_as_in_one(fresh_database):
    async def both(database):
        return await database.value("test.large", n=3_000), await database.large_value("test.large", n=3_000)

    whole, pieced = run(fresh_database, both)
    assert isinstance(pieced, bytes)
    assert pieced == whole
    assert len(whole) > 10 * PIECE_BYTES
    assert len(json.loads(pieced)) == 3_000


def test_no_piece_is_larger_than_piece_bytes(fresh_database):
    async def pieces(database):
        async with database.pool.connection() as conn:
            cursor = await conn.execute(sql_in_pieces(LARGE.sql), [3_000], binary=True)
            return [piece for _start, piece in sorted(await cursor.fetchall())]

    found = run(fresh_database, pieces)
    assert len(found) > 10
    assert all(len(piece) == PIECE_BYTES for piece in found[:-1])
    assert 0 < len(found[-1]) <= PIECE_BYTES


def test_no_row_and_a_null_value_are_none_as_with_value(fresh_database):
    async def answers(database):
        return [await database.large_value(name) for name in ("test.nothing", "test.null")] + [
            await database.value(name) for name in ("test.nothing", "test.null")
        ]

    assert run(fresh_database, answers) == [None, None, None, None]


def test_the_census_is_fetched_in_pieces(client, db):
    """If the census went back to one value (Database.value), its connection's last statement
    would not be the pieces' (pg_stat_activity shows each backend's last statement)."""
    patient = uuid4()
    insert_encounter(db, patient_uuid=patient, location_uuid=WARD_A)
    response = client.post("/dhos/v1/encounter/locations", json=[str(WARD_A)], headers=auth())
    assert response.status_code == 200, response.text
    assert [encounter["patient_uuid"] for encounter in response.json()] == [str(patient)]
    last_statements = [
        query
        for (query,) in db.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            ["encounters-service"],
        )
    ]
    assert any("generate_series(1, length(answer.bytes)" in query for query in last_statements), last_statements


def test_the_server_returns_freed_memory_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("_RJEM_MALLOC_CONF", raising=False)
    cli.return_freed_memory()
    assert os.environ["_RJEM_MALLOC_CONF"] == cli.JEMALLOC_CONF
    monkeypatch.setenv("_RJEM_MALLOC_CONF", "dirty_decay_ms:5000")
    cli.return_freed_memory()
    assert os.environ["_RJEM_MALLOC_CONF"] == "dirty_decay_ms:5000"


@pytest.mark.parametrize("size", [2, PIECE_BYTES - 1, PIECE_BYTES, PIECE_BYTES + 1, 2 * PIECE_BYTES])
def test_values_around_the_size_of_a_piece_come_back_whole(fresh_database, size):
    async def answer(database):
        return await database.large_value("test.sized", size=size)

    assert run(fresh_database, answer) == b'"' + b"x" * (size - 2) + b'"'
