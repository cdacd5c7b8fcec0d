"""Single-flight: identical requests in flight at the same moment share one generation.

Claude Code re-sends a turn it believes timed out; without this, the same long prefill would
run two or three times on the GPU at once. The generation runs in its own task, owned by the
flight rather than by the request that started it, so the first requester leaving costs the
others nothing; it is cancelled (closing the upstream request) when the last one leaves. The
table is per process: with several uvicorn workers each worker has its own.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Flight:
    __slots__ = ("followers", "task", "waiters")

    def __init__(self, task: asyncio.Task[tuple[Any, Any]]) -> None:
        self.task = task
        self.followers = 0
        self.waiters = 0


class SingleFlight:
    """One generation per key; every caller waiting on it gets its result."""

    def __init__(self) -> None:
        self.leaders = 0
        self.followers = 0
        self._flights: dict[str, _Flight] = {}

    async def run_once(self, key: str, produce: Callable[[], Awaitable[T]]) -> T:
        """``run`` without saying who produced the result."""
        result, _ = await self.run(key, produce)
        return result

    async def run(self, key: str, produce: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``produce`` once for all concurrent callers with the same ``key`` in this process;
        return its result and whether this caller's own ``produce`` made it.

        The first caller (the leader) starts ``produce()`` in a task of its own; callers
        arriving while it runs (followers) wait for the same task. ``produce`` returns the
        final Message dict, or None when the result is not shareable.

        * it returns a value -> the leader gets that object, every follower a deep copy of it
          as it was when the generation finished;
        * it returns None or raises -> the leader gets that; each follower runs its own
          ``produce()`` (no second round of single-flight, so nothing is serialised);
        * any caller may be cancelled (its client left) without affecting the others: the
          generation goes on while at least one caller waits, and is cancelled when the last
          one leaves.
        """
        flight = self._flights.get(key)
        leader = flight is None
        if flight is None:
            flight = self._start(key, produce)
            self.leaders += 1
        else:
            self.followers += 1
            flight.followers += 1
        flight.waiters += 1
        try:
            produced, snapshot = await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            flight.waiters -= 1
            if flight.waiters == 0:
                flight.task.cancel()  # nobody is left to read the answer
            raise
        except Exception:
            flight.waiters -= 1
            if leader:
                raise
            return await produce(), True
        flight.waiters -= 1
        if leader:
            result: T = produced
            return result, True
        if snapshot is None:
            return await produce(), True
        copied: T = copy.deepcopy(snapshot)
        return copied, False

    def _start(self, key: str, produce: Callable[[], Awaitable[Any]]) -> _Flight:
        async def generate() -> tuple[Any, Any]:
            try:
                produced = await produce()
            finally:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            # Snapshot for the followers now, so that later changes by the leader's caller to
            # its own object cannot leak into what they receive.
            snapshot = copy.deepcopy(produced) if flight.followers else produced
            return produced, snapshot

        def finished(task: asyncio.Task[tuple[Any, Any]]) -> None:
            if not task.cancelled():
                task.exception()  # retrieved here too: every waiter may have left already

        flight = _Flight(asyncio.get_running_loop().create_task(generate()))
        flight.task.add_done_callback(finished)
        self._flights[key] = flight
        return flight

    def in_flight(self) -> int:
        """Number of keys currently being produced (for /metrics or tests)."""
        return len(self._flights)
