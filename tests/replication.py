"""A primary and its streaming standbys, from the PostgreSQL binaries, on loopback: what
docs/deploying.md describes, small enough for a test (a standby starts in about a second).

The primary is `running_postgres` (tests/conftest.py); each standby is
encounters_service.embedded.start_local_standby's: a `pg_basebackup -R -X stream` copy with its
own replication slot, started in hot standby as the `postgres` user (the bench's standby too).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import port_for
import psycopg
from pytest_postgresql.executors import PostgreSQLExecutor

from encounters_service import migrate
from encounters_service.embedded import LocalStandby, start_local_standby
from encounters_service.embedded import wait_until_replayed as replayed
from tests.conftest import _scratch_dir, create_database, running_postgres, server_conninfo

DATABASE = "encounters_replicated"
# The primary of a replicated pair: WAL for standbys (the default wal_level=replica), durable
# commits (a failover must not lose what was acknowledged), and quick enough for tests.
PRIMARY_OPTIONS = "-c fsync=off -c full_page_writes=off -c max_connections=200 -c wal_sender_timeout=5s"
STANDBY_OPTIONS = "-c fsync=off -c hot_standby_feedback=on -c max_connections=200 -c wal_receiver_status_interval=1s"


Standby = LocalStandby


def start_standby(primary: PostgreSQLExecutor, name: str) -> Standby:
    """A new standby of `primary`, streaming through the replication slot `name`, running."""
    directory, port = _scratch_dir(), port_for.select_random()
    return start_local_standby(
        primary.host, primary.port, directory, name, port=port, options=STANDBY_OPTIONS, dbname=DATABASE
    )


def wait_until_replayed(primary: PostgreSQLExecutor, standby: Standby, seconds: float = 30) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    replayed(server_conninfo(primary, "postgres"), standby, seconds)


@dataclass
class Replicated:
    """A migrated database on a primary, with its standbys."""

    primary: PostgreSQLExecutor
    standbys: list[Standby]

    @property
    def primary_conninfo(self) -> str:
        return server_conninfo(self.primary, DATABASE)


@contextmanager
def replicated(standbys: int = 1, *, synchronous: bool = False) -> Iterator[Replicated]:
    """A primary with the migrated database DATABASE and `standbys` hot standbys streaming from it.
    synchronous=True: a commit waits until a standby has flushed it (synchronous_standby_names)."""
    with ExitStack() as stack:
        primary = stack.enter_context(running_postgres(PRIMARY_OPTIONS))
        migrate.upgrade(create_database(primary, DATABASE))
        nodes = []
        for number in range(standbys):
            standby = start_standby(primary, f"standby{number + 1}")
            stack.callback(shutil.rmtree, standby.directory, ignore_errors=True)
            stack.callback(standby.stop, "immediate")
            nodes.append(standby)
        for standby in nodes:
            wait_until_replayed(primary, standby)
        if synchronous:  # only now: until a standby is there to confirm them, commits would wait
            with psycopg.connect(server_conninfo(primary, "postgres"), autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'standby1'")
                conn.execute("SELECT pg_reload_conf()")
        yield Replicated(primary, nodes)
