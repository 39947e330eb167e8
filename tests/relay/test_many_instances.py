"""Several instances against one primary PostgreSQL (issue 14, item 5): two `serve` processes on
two ports and two `relay` processes, as production runs them. The load test's clients, spread over
both instances, keep every guarantee of tests/reliability/test_load.py, and what a consumer of the
exchange receives is every committed change's event, once, in order per encounter, published by
both relays."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter, defaultdict
from contextlib import ExitStack

import psycopg

from tests.helpers import SERVICE_ENV, Command, Service, as_app
from tests.relay.support import Consumer, eventually, waiting
from tests.reliability.test_load import LOAD_SECONDS, assert_load_held, run_load

INSTANCES = 2
RELAYS = 2
SECONDS = LOAD_SECONDS * 2 / 3  # 10 s in CI: the load test's own run is the longer one
DRAIN_S = 60.0  # for the relays to publish what the load left waiting
STOPPED = re.compile(r"relay stopped after publishing (\d+) messages")
BATCH = re.compile(r"published (\d+) messages in")


def test_two_instances_and_two_relays_on_one_database_keep_the_load_tests_guarantees(
    db, fresh_database, relay_settings
):
    exchange = relay_settings.rabbitmq_exchange
    relay_env = {
        "DATABASE_URL": as_app(fresh_database),
        "RABBITMQ_HOST": relay_settings.rabbitmq_host,
        "RABBITMQ_PORT": str(relay_settings.rabbitmq_port),
        "RABBITMQ_EXCHANGE": exchange,
    }
    with ExitStack() as stack:
        relays = [stack.enter_context(Command.launch(relay_env, "relay")) for _ in range(RELAYS)]
        services = [
            stack.enter_context(Service.start({**SERVICE_ENV, "DATABASE_URL": as_app(fresh_database)}))
            for _ in range(INSTANCES)
        ]
        for service in services:
            service.wait_until_running()

        async def scenario():
            async with Consumer(exchange) as consumer:
                await eventually(lambda: all("relay connected" in r.output() for r in relays), "both relays to connect")
                tally = await run_load([service.base_url for service in services], SECONDS)
                [(written,)] = db.execute("SELECT count(*) FROM encounters.outbox").fetchall()
                await eventually(
                    lambda: waiting(db) == 0 and len({m.message_id for m in consumer.messages}) >= written,
                    f"the relays to publish all {written} messages",
                    timeout=DRAIN_S,
                )
                await asyncio.sleep(0.5)  # time for any duplicate to arrive
                return tally, list(consumer.messages)

        tally, received = asyncio.run(scenario())
        served = [service.stop() for service in services]
        relayed = [relay.stop() for relay in relays]

    assert_load_held(db, tally)
    assert all("Traceback" not in output for output in served + relayed)
    assert len(tally.instances) == INSTANCES and min(tally.instances.values()) > 0

    outbox = db.execute("SELECT message_id::text, encounter_uuid::text FROM encounters.outbox ORDER BY id").fetchall()
    copies = Counter(message.message_id for message in received)
    published = [int(STOPPED.search(output).group(1)) for output in relayed]
    batches = [[int(n) for n in BATCH.findall(output)] for output in relayed]
    print(
        f"many instances: {len(outbox)} events written, {len(received)} received, "
        f"{sum(n - 1 for n in copies.values())} duplicates; per relay {published} messages "
        f"in {[len(b) for b in batches]} batches (largest {[max(b, default=0) for b in batches]})"
    )
    assert set(copies) == {message_id for message_id, _ in outbox}  # every event, at least once
    assert max(copies.values()) == 1  # no crash here, so a copy would mean two relays sent one row
    assert sum(published) == len(outbox) and min(published) > 0  # both relays took a share
    assert all("relay interrupted" not in output for output in relayed)
    assert_order_per_encounter(db, outbox, received)


def assert_order_per_encounter(db: psycopg.Connection, outbox: list[tuple[str, str]], received: list) -> None:
    """Per encounter, the consumer gets the events in the order they were written (outbox id order),
    and the moves it is told of are the encounter's location history, stay after stay."""
    written, arrived = defaultdict(list), defaultdict(list)
    encounter_of = dict(outbox)
    for message_id, encounter in outbox:
        written[encounter].append(message_id)
    for message in received:
        arrived[encounter_of[message.message_id]].append(message)
    assert {encounter: [m.message_id for m in messages] for encounter, messages in arrived.items()} == written

    told = defaultdict(list)  # encounter → (old, new) location of each move, as received
    for encounter, messages in arrived.items():
        for message in messages:
            event = json.loads(message.body)
            if event.get("event_type") == "encounter_modified":
                for change in event["event_data"]["modifications"]:
                    if change["field"] == "location_uuid":
                        told[encounter].append((change["old"], change["new"]))
    stays = defaultdict(list)
    rows = db.execute(
        "SELECT e.uuid::text, e.location_uuid::text, h.location_uuid::text"
        " FROM encounters.encounter AS e JOIN encounters.location_history AS h ON h.encounter_uuid = e.uuid"
        " ORDER BY h.id"
    ).fetchall()
    current = {}
    for encounter, location, left in rows:
        stays[encounter].append(left)
        current[encounter] = location
    history = {
        encounter: list(zip(left, [*left[1:], current[encounter]], strict=True)) for encounter, left in stays.items()
    }
    assert told == history
