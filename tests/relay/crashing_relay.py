"""A relay process that dies (os._exit, no clean-up) right after the broker confirmed its first
batch and before marking it published: `python -m tests.relay.crashing_relay CONNINFO EXCHANGE`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys

from encounters_service.relay import Relay
from tests.helpers import TEST_SETTINGS
from tests.relay.support import BROKER_HOST, BROKER_PORT

CRASH_EXIT_CODE = 86


class CrashingRelay(Relay):
    async def mark_published(self, work, ids):
        os._exit(CRASH_EXIT_CODE)


if __name__ == "__main__":
    conninfo, exchange = sys.argv[1:]
    settings = dataclasses.replace(
        TEST_SETTINGS, rabbitmq_host=BROKER_HOST, rabbitmq_port=BROKER_PORT, rabbitmq_exchange=exchange
    )
    asyncio.run(CrashingRelay(settings, conninfo).run())
