"""ReadGate.slot (a class-based context manager since issue 17 item 4): the caller's share and the
total held for the block and given back after it, whether it ends, raises, or is cancelled while
waiting; a request over its share answered 503 after the wait; no entry left for an idle caller."""

from __future__ import annotations

import asyncio

import pytest
from litestar.exceptions import HTTPException

from encounters_service.api.read_gate import BUSY, BUSY_ALL, ReadGate


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_slot_is_held_for_the_block_and_given_back():
    async def scenario() -> None:
        gate = ReadGate(total=2, per_caller=1, wait_s=0.01)
        async with gate.slot("a"):
            assert gate._callers["a"].users == 1
            with pytest.raises(HTTPException) as refused:
                async with gate.slot("a"):
                    pass
            assert (refused.value.status_code, refused.value.detail) == (503, BUSY)
            assert refused.value.headers == {"Retry-After": "1"}
            async with gate.slot("b"):  # another caller's share
                with pytest.raises(HTTPException) as full:
                    async with gate.slot("c"):
                        pass
                assert full.value.detail == BUSY_ALL
        assert gate._callers == {}
        assert not gate._total.locked()
        async with gate.slot("a"):  # free again
            pass

    run(scenario())


def test_a_block_that_raises_gives_its_slot_back():
    async def scenario() -> None:
        gate = ReadGate(total=1, per_caller=1, wait_s=0.01)
        with pytest.raises(ValueError):
            async with gate.slot("a"):
                raise ValueError
        assert gate._callers == {} and not gate._total.locked()

    run(scenario())


def test_a_waiter_cancelled_or_refused_leaves_nothing_held():
    async def scenario() -> None:
        gate = ReadGate(total=1, per_caller=2, wait_s=5)
        async with gate.slot("a"):
            waiting = asyncio.create_task(gate.slot("b").__aenter__())  # waits for the total
            await asyncio.sleep(0.01)
            assert gate._callers["b"].users == 1
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert "b" not in gate._callers
            assert not gate._callers["a"].semaphore.locked()  # a's second slot: still free
        assert gate._callers == {} and not gate._total.locked()

    run(scenario())


def test_a_waiter_gets_the_slot_when_it_is_given_back():
    async def scenario() -> list[str]:
        gate = ReadGate(total=1, per_caller=1, wait_s=1)
        order: list[str] = []

        async def read(name: str) -> None:
            async with gate.slot("a"):
                order.append(name)
                await asyncio.sleep(0.01)

        await asyncio.gather(read("first"), read("second"))
        assert gate._callers == {}
        return order

    assert run(scenario()) == ["first", "second"]
