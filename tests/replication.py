"""A primary and its streaming standbys, from the PostgreSQL binaries, on loopback: what
docs/deploying.md describes, small enough for a test (a standby starts in about a second).

The primary is `running_postgres` (tests/conftest.py); each standby is a `pg_basebackup -R -X
stream` copy with its own replication slot, started in hot standby as the `postgres` user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import port_for
import psycopg
from pytest_postgresql.executors import PostgreSQLExecutor

from encounters_service import migrate
from encounters_service.embedded import find_bindir
from tests.conftest import _pg_ctl_wrapper, _scratch_dir, create_database, running_postgres, server_conninfo

DATABASE = "encounters_replicated"
# The primary of a replicated pair: WAL for standbys (the default wal_level=replica), durable
# commits (a failover must not lose what was acknowledged), and quick enough for tests.
PRIMARY_OPTIONS = "-c fsync=off -c full_page_writes=off -c max_connections=200 -c wal_sender_timeout=5s"
STANDBY_OPTIONS = "-c fsync=off -c hot_standby_feedback=on -c max_connections=200 -c wal_receiver_status_interval=1s"


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Standby:
    """A hot standby streaming from a primary, driven with pg_ctl."""

    name: str
    directory: Path
    port: int
    pg_ctl: Path

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    def conninfo(self, dbname: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -h 127.0.0.1 {STANDBY_OPTIONS}"
        log = self.directory / "postgresql.log"
        subprocess.run(
            [str(self.pg_ctl), "start", "-w", "-D", str(self.datadir), "-o", options, "-l", str(log)],
            check=True,
            capture_output=True,
        )
        _wait_for_logins(self.conninfo("postgres"))

    def stop(self, mode: str = "fast") -> None:
        subprocess.run([str(self.pg_ctl), "stop", "-w", "-D", str(self.datadir), "-m", mode], capture_output=True)

    def promote(self) -> None:
        """What an HA manager does when the primary is gone: end recovery, accept writes."""
        subprocess.run([str(self.pg_ctl), "promote", "-w", "-D", str(self.datadir)], check=True, capture_output=True)

    def sql(self, statement: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            return conn.execute(statement, params or None).fetchall()


def start_standby(primary: PostgreSQLExecutor, name: str) -> Standby:
    """A new standby of `primary`, streaming through the replication slot `name`, running."""
    directory = _scratch_dir()
    standby = Standby(name, directory, port_for.select_random(), _pg_ctl_wrapper(directory))
    backup = [
        str(find_bindir() / "pg_basebackup"),
        *("-h", primary.host, "-p", str(primary.port), "-U", "postgres"),
        *("-D", str(standby.datadir), "-R", "-X", "stream", "--checkpoint=fast", "-C", "-S", name),
    ]
    subprocess.run(_as_postgres(backup), check=True, capture_output=True)
    # Named on the primary (pg_stat_replication.application_name, synchronous_standby_names) by this.
    with (standby.datadir / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"cluster_name = '{name}'\n")
    standby.start()
    return standby


def _wait_for_logins(conninfo: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            psycopg.connect(conninfo).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_until_replayed(primary: PostgreSQLExecutor, standby: Standby, seconds: float = 30) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    with psycopg.connect(server_conninfo(primary, "postgres"), autocommit=True) as conn:
        [(target,)] = conn.execute("SELECT pg_current_wal_lsn()").fetchall()
    deadline = time.monotonic() + seconds
    while not standby.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", target)[0][0]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"standby {standby.name} did not replay up to {target}")
        time.sleep(0.02)


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
