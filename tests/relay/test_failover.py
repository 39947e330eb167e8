"""The primary PostgreSQL dies under `encounters-service serve` and `relay` and its standby is
promoted, as an HA manager does (issue 14, item 4). Both run on a DATABASE_URL that names both
hosts with target_session_attrs=read-write, and neither is restarted: writes resume within a few
seconds of the promotion, every write answered 2xx is on the new primary (synchronous replication),
every write answered 503 is whole or absent, and the relay publishes every outbox message of the
new primary.

FAILOVER_PAUSE_SECONDS (env, default 1) sets how long the HA manager waits before it promotes.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import aio_pika
import httpx
import pytest

from encounters_service.db import connect_sync
from encounters_service.relay import Backoff
from encounters_service.settings import Settings
from tests.api.test_encounter_writes import ENCOUNTERS, create_body, new_uuid
from tests.conftest import crash_postgres, restart_postgres
from tests.helpers import SERVICE_ENV, Command, Service
from tests.relay.support import Consumer, eventually, waiting
from tests.reliability.test_outage import (
    HEADERS,
    UNAVAILABLE,
    Answer,
    assert_every_write_whole_or_absent,
    start_writers,
    wait_until,
)
from tests.replication import DATABASE, Replicated, replicated

WRITERS = 4  # 3 creating, 1 moving one encounter
WRITE_BEFORE_S = 1.5  # of writes on the old primary before it dies
# Long enough for the relay's backoff to reach its maximum (0.5 + 1 + 2 + 4 s) and for the pool to
# give up reconnecting once (db.RECONNECT_TIMEOUT_S): what the test measures is resumption from there.
PAUSE_SECONDS = float(os.environ.get("FAILOVER_PAUSE_SECONDS", "8"))
RESUME_WITHIN_S = 5.0  # from the promotion to the first write answered 2xx
RELAY_RESUME_WITHIN_S = Backoff().maximum_s + 2  # from the promotion to the relay's first message
WRITE_AFTER_S = 2.0  # of writes on the new primary, once they resumed
DRAIN_S = 30.0
# Sessions of the service whose COMMIT waits for the synchronous standby to confirm it.
WAITING_FOR_THE_STANDBY = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND application_name = 'encounters-service'"
)


def multi_host_urls(pair: Replicated) -> tuple[str, str]:
    """DATABASE_URL naming both servers, the standby first (so that only target_session_attrs
    sends a session to the primary), in the URL form and in the key=value form."""
    [standby] = pair.standbys
    ports = f"{standby.port},{pair.primary.port}"
    url = (
        f"postgresql://postgres@127.0.0.1:{standby.port},127.0.0.1:{pair.primary.port}/{DATABASE}"
        "?target_session_attrs=read-write"
    )
    key_value = f"host=127.0.0.1,127.0.0.1 port={ports} user=postgres dbname={DATABASE} target_session_attrs=read-write"
    return url, key_value


def first_success_after(answers: list[Answer], moment: float) -> float:
    """When the first write sent after `moment` was answered 200 (time.monotonic())."""
    return min(a.finished for a in answers if a.status == 200 and a.started > moment)


def assert_failed_over(answers: list[Answer], crashed_at: float, promoted_at: float) -> None:
    """What writers see of a failover (the primary died at `crashed_at`, a standby was promoted at
    `promoted_at`): answers 200 or 503 {"message"} only, a write in flight when the primary died, 503
    only from then until writes resumed (every worker's pool reconnected), and the first write sent
    after the promotion answered 200 within RESUME_WITHIN_S."""
    statuses = {answer.status for answer in answers}
    assert statuses <= {200, 503}, [a.body for a in answers if a.status not in (200, 503)][:3]
    unavailable = [answer for answer in answers if answer.status == 503]
    assert {answer.body for answer in unavailable} <= {UNAVAILABLE}
    assert any(a.started < crashed_at < a.finished for a in answers), "the primary did not die under the writes"
    assert all(a.finished >= crashed_at and a.started <= promoted_at + RESUME_WITHIN_S for a in unavailable)
    assert first_success_after(answers, promoted_at) - promoted_at < RESUME_WITHIN_S


class TimedConsumer(Consumer):
    """A Consumer that notes when each message id first arrived (time.monotonic())."""

    def __init__(self, exchange: str):
        super().__init__(exchange)
        self.first_arrival: dict[str, float] = {}

    async def _received(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.first_arrival.setdefault(str(message.message_id), time.monotonic())
        await super()._received(message)


@pytest.fixture
def failover_pair():
    with replicated(standbys=1, synchronous=True) as pair:
        yield pair


def test_writes_and_events_go_on_after_the_standby_is_promoted(failover_pair: Replicated, relay_settings: Settings):
    pair = failover_pair
    [standby] = pair.standbys
    url, key_value = multi_host_urls(pair)
    broker = {
        "RABBITMQ_HOST": relay_settings.rabbitmq_host,
        "RABBITMQ_PORT": str(relay_settings.rabbitmq_port),
        "RABBITMQ_EXCHANGE": relay_settings.rabbitmq_exchange,
    }
    with ExitStack() as stack:
        # serve migrates at start: yoyo's connection, too, must find the primary behind the standby
        service = stack.enter_context(Service.start({**SERVICE_ENV, "DATABASE_URL": url, "MIGRATE_ON_START": "true"}))
        relay = stack.enter_context(Command.launch({"DATABASE_URL": key_value, **broker}, "relay"))
        service.wait_until_running()
        moved: dict = {}  # the encounter that one writer moves, created once the consumer listens
        answers: list[Answer] = []
        stop = threading.Event()

        async def scenario() -> tuple[dict[str, float], dict[str, float]]:
            async with TimedConsumer(relay_settings.rabbitmq_exchange) as consumer:
                await eventually(lambda: "relay connected" in relay.output(), "the relay to connect")
                moved.update(httpx.post(f"{service.base_url}{ENCOUNTERS}", json=create_body(), headers=HEADERS).json())
                with ThreadPoolExecutor(WRITERS) as pool:
                    started = start_writers(pool, service.base_url, moved, answers, stop)
                    writers = [asyncio.wrap_future(writer) for writer in started]
                    await asyncio.sleep(WRITE_BEFORE_S)
                    crashed_at = time.monotonic()  # when it begins to die
                    await asyncio.to_thread(crash_postgres, pair.primary)
                    await asyncio.sleep(PAUSE_SECONDS)
                    promoting_at = time.monotonic()
                    await asyncio.to_thread(standby.promote)
                    promoted_at = time.monotonic()
                    await eventually(
                        lambda: any(a.status == 200 and a.started > promoting_at for a in answers),
                        "a write to succeed on the new primary",
                        timeout=30,
                    )
                    await asyncio.sleep(WRITE_AFTER_S)
                    stop.set()
                    await asyncio.gather(*writers)
                with connect_sync(standby.conninfo(), autocommit=True) as new_primary:
                    [(written,)] = new_primary.execute("SELECT count(*) FROM encounters.outbox").fetchall()
                    await eventually(
                        lambda: waiting(new_primary) == 0 and len(consumer.first_arrival) >= written,
                        f"the relay to publish the new primary's {written} messages",
                        timeout=DRAIN_S,
                    )
                moments = {"crashed": crashed_at, "promoting": promoting_at, "promoted": promoted_at}
                return moments, dict(consumer.first_arrival)

        moments, arrivals = asyncio.run(scenario())
        assert service.process.poll() is None and relay.process.poll() is None  # neither restarted
        served, relayed = service.stop(), relay.stop()

    with connect_sync(standby.conninfo(), autocommit=True) as db:
        outbox = {message_id for (message_id,) in db.execute("SELECT message_id::text FROM encounters.outbox")}
        assert_every_write_whole_or_absent(db, answers, moved)

    statuses = Counter(answer.status for answer in answers)
    acknowledged = sum(answer.status == 200 for answer in answers)
    crashed_at, promoting_at = moments["crashed"], moments["promoting"]
    resumed_at = first_success_after(answers, promoting_at)
    relay_resumed_at = min(t for t in arrivals.values() if t > promoting_at)
    phantoms = set(arrivals) - outbox
    print(
        f"\nfailover after a {PAUSE_SECONDS:.0f} s pause: {len(answers)} writes {dict(statuses)}; promotion took "
        f"{moments['promoted'] - promoting_at:.2f} s; first write answered 200 {resumed_at - promoting_at:.2f} s "
        f"after the promotion began; {acknowledged} answered 200, all on the new primary; the relay's first message "
        f"{relay_resumed_at - promoting_at:.2f} s after it; {len(outbox)} outbox messages, all received; "
        f"{len(phantoms)} received that the new primary does not have"
    )
    assert_failed_over(answers, crashed_at, promoting_at)
    assert outbox <= set(arrivals)  # every message of the new primary published, none lost
    # and none that it does not have: a commit is visible to the relay only once the standby has it
    assert not phantoms, f"{len(phantoms)} messages published of changes the new primary does not have"
    assert relay_resumed_at - promoting_at < RELAY_RESUME_WITHIN_S
    assert all("Traceback" not in output for output in (served, relayed))


def test_a_write_whose_commit_was_in_flight_when_the_primary_died_is_answered_503(failover_pair: Replicated):
    """A commit waits for the synchronous standby's flush; with the standby's WAL receiver stopped it
    waits until the primary dies. It was committed on the old primary but never reached the new
    one: its outcome is unknown to the service, and the answer is 503, not 2xx."""
    pair = failover_pair
    [standby] = pair.standbys
    url, _ = multi_host_urls(pair)
    with Service.start({**SERVICE_ENV, "DATABASE_URL": url}, "--workers", "1") as service:
        service.wait_until_running()
        with httpx.Client(base_url=service.base_url, headers=HEADERS, timeout=30) as http:
            assert http.post(ENCOUNTERS, json=create_body()).status_code == 200
            with connect_sync(standby.conninfo(), autocommit=True) as conn:  # its WAL receiver stops
                conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
                conn.execute("SELECT pg_reload_conf()")
            wait_until(lambda: not standby.sql("SELECT 1 FROM pg_stat_wal_receiver"))
            in_flight = new_uuid()
            with ThreadPoolExecutor(1) as pool:
                answer = pool.submit(http.post, ENCOUNTERS, json=create_body(epr_encounter_id=in_flight))
                with connect_sync(pair.primary_conninfo, autocommit=True) as primary:
                    wait_until(lambda: primary.execute(WAITING_FOR_THE_STANDBY).fetchall() == [(1,)])
                crash_postgres(pair.primary)
                assert answer.result().status_code == 503
                assert answer.result().content == UNAVAILABLE
            standby.promote()
            wait_until(lambda: http.post(ENCOUNTERS, json=create_body()).status_code == 200)
        service.stop()
    assert not standby.sql("SELECT 1 FROM encounters.encounter WHERE epr_encounter_id = %s", in_flight)
    restart_postgres(pair.primary)  # the old primary, alone: what it had committed
    with connect_sync(pair.primary_conninfo, autocommit=True) as old_primary:
        assert old_primary.execute(
            "SELECT 1 FROM encounters.encounter WHERE epr_encounter_id = %s", [in_flight]
        ).fetchall()
