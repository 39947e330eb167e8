"""A pg_auto_failover formation on loopback: a monitor and two nodes, each a `pg_autoctl` keeper with
the PostgreSQL it runs (Debian: postgresql-<major>-auto-failover), run as the `postgres` user with
its configuration, state and data in a scratch directory of its own.

The monitor is tuned (MONITOR_SETTINGS) so that a primary that dies is replaced in seconds rather than
the defaults' minute. Each keeper runs in a process group of its own: `fail` stops a node as a
machine that dies would (keeper and PostgreSQL at once), and leaving `formation()` stops every process
it started, whether the test passed or not, and removes the directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import port_for
import psycopg
import pytest

from encounters_service.embedded import _wait_for_logins, find_bindir
from tests.conftest import _scratch_dir

DATABASE = "encounters"
# The monitor's defaults take about a minute to replace a dead primary: a health check every 20 s,
# a node unhealthy after 20 s without news, then 30 s for the primary to demote itself. Here: a check
# every second, unhealthy after 2 s, 3 s for the demotion. primary_demote_timeout must stay above
# the keepers' timeout.network_partition_timeout (KEEPER_SETTINGS), after which a primary that
# lost the monitor and its standby stops itself: else an isolated primary could still take writes
# when the standby is promoted.
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "2000",
    "pgautofailover.primary_demote_timeout": "3000",
    "pgautofailover.startup_grace_period": "1000",
}
KEEPER_SETTINGS = {"timeout.network_partition_timeout": "2"}
READY_WITHIN_S = 90.0


def pg_autoctl() -> str:
    path = shutil.which("pg_autoctl")
    if path is None:
        major = find_bindir().parent.name
        pytest.fail(f"the pg_auto_failover test needs pg_autoctl: apt-get install postgresql-{major}-auto-failover")
    return path


@dataclass
class Node:
    """A monitor or data node: `pg_autoctl` and the PostgreSQL it started, in one process group."""

    name: str
    port: int
    pgdata: Path
    keeper: subprocess.Popen | None = None

    def conninfo(self, dbname: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"


@dataclass
class Formation:
    directory: Path
    monitor: Node
    nodes: list[Node]

    def monitor_sql(self, statement: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.monitor.conninfo("pg_auto_failover"), autocommit=True) as conn:
            return conn.execute(statement, params or None).fetchall()

    def node_in(self, state: str) -> Node:
        """The node that last reported `state` (primary, secondary, …) to the monitor."""
        [(name,)] = self.monitor_sql("SELECT nodename FROM pgautofailover.node WHERE reportedstate = %s", state)
        return next(node for node in self.nodes if node.name == name)

    def uri(self) -> str:
        """The formation's URL as `pg_autoctl show uri` prints it: every node, target_session_attrs=read-write."""
        return self.autoctl("show", "uri", "--pgdata", self.monitor.pgdata, "--formation", "default").strip()

    def events_since(self, moment: datetime) -> list[tuple[datetime, str, str, str, str]]:
        """The monitor's log of state changes after `moment`: (when, node, reported, goal, description)."""
        return self.monitor_sql(  # type: ignore[return-value]
            "SELECT eventtime, nodename, reportedstate::text, goalstate::text, description"
            " FROM pgautofailover.event WHERE eventtime > %s ORDER BY eventid",
            moment,
        )

    def autoctl(self, *args: object) -> str:
        done = subprocess.run(self._as_postgres(pg_autoctl(), *args), capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"pg_autoctl {args[0]} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    def start(self, node: Node, *args: object) -> None:
        """`pg_autoctl *args` in the background, in a process group of its own, its output in log(node)."""
        with (self.directory / f"{node.name}.log").open("w") as log:
            node.keeper = subprocess.Popen(
                self._as_postgres(pg_autoctl(), *args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self, node: Node) -> str:
        return (self.directory / f"{node.name}.log").read_text(errors="replace")

    def fail(self, node: Node) -> None:
        """Stop the node as if its machine died: the keeper frozen first (so that it cannot restart its
        PostgreSQL), PostgreSQL stopped at once (pg_ctl stop -m immediate: no checkpoint, clients cut
        off), then the keeper killed. Whatever of it still runs: a no-op for a node stopped already."""
        keeper = node.keeper
        running = keeper is not None and keeper.poll() is None  # so that its process group is still ours
        if keeper is not None and running:
            os.killpg(keeper.pid, signal.SIGSTOP)
        postmaster = node.pgdata / "postmaster.pid"
        if postmaster.exists():
            if running:  # the server the keeper started, frozen with it
                with suppress(ProcessLookupError, ValueError):
                    os.kill(int(postmaster.read_text().split()[0]), signal.SIGCONT)
            pg_ctl = self._as_postgres(find_bindir() / "pg_ctl", "stop", "-D", node.pgdata, "-m", "immediate")
            subprocess.run(pg_ctl, capture_output=True, check=False)
        if keeper is not None and running:
            os.killpg(keeper.pid, signal.SIGKILL)
            keeper.wait()

    def _as_postgres(self, program: Path | str, *args: object) -> list[str]:
        """The command run as the `postgres` user (pg_autoctl, like pg_ctl, refuses root), with
        pg_autoctl's files under the formation's directory and the server binaries on its PATH."""
        env = [
            f"PATH={find_bindir()}:/usr/bin:/bin",
            *(f"XDG_{kind}_HOME={self.directory / kind.lower()}" for kind in ("CONFIG", "DATA")),
            f"XDG_RUNTIME_DIR={self.directory / 'run'}",
        ]
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return [*as_postgres, "env", *env, str(program), *map(str, args)]


@contextmanager
def formation() -> Iterator[Formation]:
    """A monitor (MONITOR_SETTINGS) and two nodes, the first the primary, the second its synchronous
    secondary, with the database DATABASE; every process stopped and the directory removed on exit."""
    pg_autoctl()
    directory = _scratch_dir()
    monitor = Node("monitor", port_for.select_random(), directory / "monitor")
    nodes = [Node(f"node{number}", port_for.select_random(), directory / f"node{number}") for number in (1, 2)]
    cluster = Formation(directory, monitor, nodes)
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        for node in (monitor, *nodes):  # in reverse on exit: the nodes, then the monitor
            stack.callback(cluster.fail, node)
        common = ["--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl"]
        cluster.autoctl("create", "monitor", "--pgdata", monitor.pgdata, "--pgport", monitor.port, *common)
        cluster.start(monitor, "run", "--pgdata", monitor.pgdata)
        _wait_for_logins(monitor.conninfo("pg_auto_failover"))
        with psycopg.connect(monitor.conninfo("pg_auto_failover"), autocommit=True) as conn:
            for name, value in MONITOR_SETTINGS.items():  # before any node joins
                conn.execute(f"ALTER SYSTEM SET {name} = {value}")
            conn.execute("SELECT pg_reload_conf()")
        monitor_url = f"postgres://autoctl_node@127.0.0.1:{monitor.port}/pg_auto_failover?sslmode=disable"
        for node in nodes:
            if node is nodes[1]:
                # pg_basebackup asks the primary for a spread checkpoint, paced at 0.1 s per dirty
                # buffer (a minute and a half on the new node1): leave it next to nothing to write.
                _checkpoint(nodes[0])
            cluster.autoctl(
                "create", "postgres", "--pgdata", node.pgdata, "--pgport", node.port, "--name", node.name,
                "--dbname", DATABASE, "--monitor", monitor_url, *common,
            )  # fmt: skip
            for name, value in KEEPER_SETTINGS.items():
                cluster.autoctl("config", "set", "--pgdata", node.pgdata, name, value)
            cluster.start(node, "run", "--pgdata", node.pgdata)
        _wait_until_ready(cluster)
        yield cluster


def _wait_until_ready(cluster: Formation) -> None:
    """Until the monitor has a primary and a secondary, each in the state it was assigned."""
    deadline = time.monotonic() + READY_WITHIN_S
    query = "SELECT reportedstate::text, goalstate::text FROM pgautofailover.node ORDER BY reportedstate"
    while (states := cluster.monitor_sql(query)) != [("primary", "primary"), ("secondary", "secondary")]:
        assert time.monotonic() < deadline, f"no primary and secondary after {READY_WITHIN_S:.0f} s: {states}"
        for node in (cluster.monitor, *cluster.nodes):
            assert node.keeper is None or node.keeper.poll() is None, cluster.log(node)
        time.sleep(0.2)


def _checkpoint(node: Node) -> None:
    _wait_for_logins(node.conninfo("postgres"))
    with psycopg.connect(node.conninfo("postgres"), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
