"""A share of the database connections for the read routes whose answers grow with the data (lists,
the census, descendants), per caller, so that one caller's slow reads cannot take the whole pool.

In each worker process, one caller (the token's caller id) runs at most half the pool's connections
on these routes at once, and all callers together all but two: a caller flooding them with slow
requests leaves the other callers' reads and every other route their connections. A request over
its share waits for a slot for up to WAIT_S, then answers 503 with `Retry-After: 1`, without
touching the database (tests/reliability/test_deep_hierarchy.py).
"""

from __future__ import annotations

import asyncio

from litestar.exceptions import HTTPException

WAIT_S = 0.5  # longer than a census takes, well short of the pool's own timeout (2 s)
BUSY = "too many large reads at once from this caller; try again shortly"
BUSY_ALL = "too many large reads at once; try again shortly"


class ReadGate:
    """At most `total` heavy reads at once, and at most `per_caller` of one caller."""

    def __init__(self, total: int, per_caller: int, wait_s: float = WAIT_S) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_caller = per_caller
        self._callers: dict[str, _CallerSlots] = {}
        self._wait_s = wait_s

    @classmethod
    def for_pool(cls, pool_max_size: int) -> ReadGate:
        return cls(total=max(1, pool_max_size - 2), per_caller=max(1, pool_max_size // 2))

    def slot(self, caller_id: str) -> _Slot:
        """`async with gate.slot(caller_id)`: hold one of the caller's slots and one of all
        callers' for the block, or raise a 503."""
        return _Slot(self, caller_id)

    def _leave(self, caller_id: str, mine: _CallerSlots) -> None:
        mine.users -= 1
        if not mine.users:  # no entry kept for a caller with nothing running or waiting
            del self._callers[caller_id]


class _Slot:
    """ReadGate.slot's context manager. A class, not an @asynccontextmanager: that is an async
    generator made, registered with the event loop and stepped twice for every heavy read."""

    __slots__ = ("_caller_id", "_gate", "_mine")

    def __init__(self, gate: ReadGate, caller_id: str) -> None:
        self._gate, self._caller_id = gate, caller_id

    async def __aenter__(self) -> None:
        gate, caller_id = self._gate, self._caller_id
        mine = gate._callers.get(caller_id)
        if mine is None:
            mine = gate._callers[caller_id] = _CallerSlots(asyncio.Semaphore(gate._per_caller))
        mine.users += 1
        deadline = asyncio.get_running_loop().time() + gate._wait_s
        try:
            await _acquire(mine.semaphore, deadline, BUSY)
            try:
                await _acquire(gate._total, deadline, BUSY_ALL)
            except BaseException:
                mine.semaphore.release()
                raise
        except BaseException:
            gate._leave(caller_id, mine)
            raise
        self._mine = mine

    async def __aexit__(self, *exc_info: object) -> None:
        gate, mine = self._gate, self._mine
        gate._total.release()
        mine.semaphore.release()
        gate._leave(self._caller_id, mine)


class _CallerSlots:
    __slots__ = ("semaphore", "users")

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self.semaphore = semaphore
        self.users = 0  # requests of the caller holding or waiting for a slot


async def _acquire(semaphore: asyncio.Semaphore, deadline: float, busy: str) -> None:
    if not semaphore.locked():
        await semaphore.acquire()  # free: returns at once (no timer, no task switch)
        return
    try:
        async with asyncio.timeout_at(deadline):
            await semaphore.acquire()
    except TimeoutError:
        raise HTTPException(status_code=503, detail=busy, headers={"Retry-After": "1"}) from None
