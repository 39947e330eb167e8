"""The relay's SQL (sql/queries/relay) on its own, with real concurrent transactions; no broker."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from encounters_service.db import connect_sync, run_sync
from encounters_service.sqlfiles import load_queries
from tests.relay.support import waiting, write_outbox

QUERIES = load_queries()


def claim(conn, batch_size: int) -> list[int]:
    return [row[0] for row in run_sync(conn, QUERIES["relay.claim"], batch_size=batch_size)]


@pytest.fixture
def two_relays(fresh_database):
    """Two connections in transactions of their own, as two relays mid-batch."""
    with connect_sync(fresh_database) as first, connect_sync(fresh_database) as second:
        yield first, second


def test_claim_returns_waiting_rows_oldest_first_up_to_the_batch_size(db):
    write_outbox(db, *((uuid.uuid4(), "dhos.DM000007", {"n": n}) for n in range(5)))
    db.execute("UPDATE encounters.outbox SET published_at = now() WHERE id = 2")
    rows = run_sync(db, QUERIES["relay.claim"], batch_size=3)
    assert [(row[0], row[4]) for row in rows] == [(1, '{"n": 0}'), (3, '{"n": 2}'), (4, '{"n": 3}')]
    assert all(row[5] >= 0 for row in rows)


def test_a_second_relay_skips_held_rows_and_holds_back_younger_rows_of_their_encounters(db, two_relays):
    first, second = two_relays
    x, y, z = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    write_outbox(db, *((e, "dhos.DM000007", {}) for e in (x, y, x, z, y)))  # ids 1..5
    assert claim(first, 2) == [1, 2]
    assert claim(second, 10) == [4]  # 3 waits for 1 (x), 5 for 2 (y): the first relay holds them
    run_sync(first, QUERIES["relay.mark"], ids=[1, 2])
    first.commit()
    second.rollback()
    assert claim(second, 10) == [3, 4, 5]


def test_a_rolled_back_batch_is_claimed_again(db, two_relays):
    first, second = two_relays
    write_outbox(db, (uuid.uuid4(), "dhos.DM000007", {}))
    assert claim(first, 10) == [1]
    first.rollback()  # e.g. the broker did not confirm
    assert claim(second, 10) == [1]


def test_mark_sets_published_at_once_and_wakes_listeners(db, fresh_database):
    write_outbox(db, *((uuid.uuid4(), "dhos.DM000007", {}) for _ in range(3)))
    with connect_sync(fresh_database, autocommit=True) as listener:
        run_sync(listener, QUERIES["relay.listen"])
        assert run_sync(db, QUERIES["relay.mark"], ids=[1, 2])[0][0] == 2
        assert [n.channel for n in listener.notifies(timeout=2, stop_after=1)] == ["encounters_outbox"]
    assert run_sync(db, QUERIES["relay.mark"], ids=[1, 2, 3])[0][0] == 1  # 1 and 2 were already marked
    assert waiting(db) == 0


def test_prune_deletes_only_published_rows_older_than_the_retention(db):
    write_outbox(db, *((uuid.uuid4(), "dhos.DM000007", {}) for _ in range(3)))
    db.execute(
        "UPDATE encounters.outbox SET created_at = now() - interval '3 days', published_at = CASE id "
        "WHEN 1 THEN now() - interval '2 days' WHEN 2 THEN now() - interval '1 hour' END"
    )
    assert run_sync(db, QUERIES["relay.prune"], retention=timedelta(days=1), max_rows=10)[0][0] == 1
    assert [row[0] for row in db.execute("SELECT id FROM encounters.outbox ORDER BY id")] == [2, 3]


def test_prune_deletes_at_most_max_rows_oldest_first(db):
    write_outbox(db, *((uuid.uuid4(), "dhos.DM000007", {}) for _ in range(5)))
    db.execute("UPDATE encounters.outbox SET published_at = now() - interval '2 days'")
    assert run_sync(db, QUERIES["relay.prune"], retention=timedelta(days=1), max_rows=2)[0][0] == 2
    assert [row[0] for row in db.execute("SELECT id FROM encounters.outbox ORDER BY id")] == [3, 4, 5]
