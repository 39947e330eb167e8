"""pg_auto_failover itself promotes the secondary (issue 14, item 7): a monitor and two nodes on
loopback (tests/auto_failover.py), `encounters-service serve` on the URL that `pg_autoctl show uri`
prints, writers running, and the primary's machine dies (its keeper and its PostgreSQL at once).
Nothing but pg_auto_failover promotes the secondary and nothing restarts the service: writes resume
by themselves, 503 only during the outage, every write answered 2xx is on the new primary
(pg_auto_failover's own synchronous replication), and every write answered 503 is whole or absent.

Prints the seconds from the death of the primary to the monitor's promotion (from its event log) and
from the promotion to the first write answered 200.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import psycopg

from encounters_service.db import connect_sync
from tests.api.test_encounter_writes import ENCOUNTERS, create_body
from tests.auto_failover import MONITOR_SETTINGS, Formation, Node, formation
from tests.helpers import SERVICE_ENV, Service
from tests.relay.test_failover import WRITE_AFTER_S, WRITE_BEFORE_S, assert_failed_over, first_success_after
from tests.reliability.test_outage import (
    HEADERS,
    WRITERS,
    Answer,
    assert_every_write_whole_or_absent,
    start_writers,
    wait_until,
)

# From the death of the primary to the monitor's promotion: about 4-5 s with MONITOR_SETTINGS (a
# second or two to find the primary unhealthy, then primary_demote_timeout).
PROMOTED_WITHIN_S = 15.0


def test_writes_go_on_after_pg_auto_failover_promotes_the_secondary():
    with formation() as cluster:
        primary, secondary = cluster.node_in("primary"), cluster.node_in("secondary")
        with psycopg.connect(primary.conninfo(), autocommit=True) as conn:  # set by pg_auto_failover
            [(synchronous,)] = conn.execute("SHOW synchronous_standby_names").fetchall()
        assert synchronous, "pg_auto_failover did not make its secondary synchronous"
        # the URL as pg_autoctl prints it, plus who the service logs in as and how long it waits per host
        url = f"{cluster.uri()}&user=postgres&connect_timeout=2"
        with Service.start({**SERVICE_ENV, "DATABASE_URL": url, "MIGRATE_ON_START": "true"}) as service:
            service.wait_until_running()
            moved = httpx.post(f"{service.base_url}{ENCOUNTERS}", json=create_body(), headers=HEADERS).json()
            answers: list[Answer] = []
            stop = threading.Event()
            with ThreadPoolExecutor(WRITERS) as pool:
                writers = start_writers(pool, service.base_url, moved, answers, stop)
                try:
                    time.sleep(WRITE_BEFORE_S)
                    killed, crashed_at = datetime.now(UTC), time.monotonic()
                    cluster.fail(primary)
                    promoted = wait_for_promotion(cluster, secondary, killed)
                    promoted_at = crashed_at + (promoted - killed).total_seconds()
                    wait_until(lambda: any(a.status == 200 and a.started > promoted_at for a in answers))
                    time.sleep(WRITE_AFTER_S)
                finally:  # else the pool would wait for the writers for ever
                    stop.set()
            for writer in writers:
                writer.result()
            assert service.process.poll() is None  # not restarted
            served = service.stop()
        with connect_sync(secondary.conninfo(), autocommit=True) as new_primary:
            assert_every_write_whole_or_absent(new_primary, answers, moved)
        timeline = ", ".join(
            f"{node} {goal} +{(when - killed).total_seconds():.1f} s"
            for when, node, _, goal, description in cluster.events_since(killed)
            if description.startswith("Setting goal state")
        )

    statuses = Counter(answer.status for answer in answers)
    resumed_at = first_success_after(answers, promoted_at)
    tuned = ", ".join(f"{name.removeprefix('pgautofailover.')}={value}" for name, value in MONITOR_SETTINGS.items())
    print(
        f"\npg_auto_failover ({tuned}): "
        f"{len(answers)} writes {dict(statuses)}; the monitor promoted {secondary.name} "
        f"{promoted_at - crashed_at:.2f} s after {primary.name} died ({timeline}); the first write answered 200 "
        f"{resumed_at - promoted_at:.2f} s after the promotion; {statuses[200]} answered 200, all on the new primary"
    )
    assert_failed_over(answers, crashed_at, promoted_at)
    assert "Traceback" not in served


def wait_for_promotion(cluster: Formation, node: Node, since: datetime) -> datetime:
    """When the monitor made `node` the primary after `since`: it assigned it wait_primary (a primary
    with no standby to wait for), on which its keeper ends the read-only state it was promoted in."""
    deadline = time.monotonic() + PROMOTED_WITHIN_S
    while not (
        moments := [
            when
            for when, name, _, goal, _ in cluster.events_since(since)
            if (name, goal) == (node.name, "wait_primary")
        ]
    ):
        assert time.monotonic() < deadline, f"the monitor did not promote {node.name} within {PROMOTED_WITHIN_S:.0f} s"
        time.sleep(0.1)
    return moments[0]
