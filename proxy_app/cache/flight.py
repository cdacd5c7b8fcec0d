"""Single-flight: identical requests in flight at the same moment share one generation.

Claude Code re-sends a turn it believes timed out; without this, the same long prefill would
run two or three times on the GPU at once. The generation runs in its own task, owned by the
flight rather than by the request that started it, so the first requester leaving costs the
others nothing; it is cancelled (closing the upstream request) when the last one leaves. The
table is per process: with several uvicorn workers each worker has its own.

A finished flight with a shareable result stays in the table (LINGER seconds at most, the
LINGERING latest) for the requests that arrived while it ran: in a burst of identical fast
requests, one that missed the response cache while the generation ran (its lookup came
before the store, or Redis' pool was busy and it failed open) reaches the table after the
flight ended, and generated again (300 requests → 2 generations, issue 25). A request that
arrives after the flight ended starts its own, as before, unless its cache lookup failed open
(routes/messages.py passes `arrived=-inf`): then the lingering answer is the hit it missed.
Only a flight whose answer was stored lingers (`linger`): `no-store` stays no-store, and an
empty Redis is filled again.
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Flight:
    __slots__ = ("finished", "followers", "task", "waiters")

    def __init__(self, task: asyncio.Task[tuple[Any, Any]]) -> None:
        self.task = task
        self.followers = 0
        self.waiters = 0
        self.finished = math.inf  # time.perf_counter() when its result was ready


class SingleFlight:
    """One generation per key; every caller waiting on it gets its result."""

    def __init__(self, linger: float | None = None) -> None:
        self.leaders = 0
        self.followers = 0
        self.linger = LINGER if linger is None else linger
        self._flights: dict[str, _Flight] = {}
        self._finished: OrderedDict[str, _Flight] = OrderedDict()  # lingering, oldest first

    async def run_once(self, key: str, produce: Callable[[], Awaitable[T]]) -> T:
        """``run`` without saying who produced the result."""
        result, _ = await self.run(key, produce)
        return result

    async def run(
        self,
        key: str,
        produce: Callable[[], Awaitable[T]],
        *,
        arrived: float = math.inf,
        linger: bool = True,
    ) -> tuple[T, bool]:
        """Run ``produce`` once for all concurrent callers with the same ``key`` in this process;
        return its result and whether this caller's own ``produce`` made it. ``arrived``
        (time.perf_counter) is when the caller's request arrived: a flight that finished
        before it is not joined.

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
        if flight is not None and flight.finished < arrived:
            flight = None  # ended before this request arrived: not concurrent with it
        leader = flight is None
        if flight is None:
            flight = self._start(key, produce, linger)
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

    def _start(self, key: str, produce: Callable[[], Awaitable[Any]], linger: bool) -> _Flight:
        async def generate() -> tuple[Any, Any]:
            try:
                produced = await produce()
            except BaseException:
                self._forget(key, flight)
                raise
            # Snapshot for the followers now, so that later changes by the leader's caller to
            # its own object cannot leak into what they receive.
            lingers = linger and produced is not None and self.linger > 0
            snapshot = copy.deepcopy(produced) if flight.followers or lingers else produced
            flight.finished = time.perf_counter()
            if lingers:
                self._keep(key, flight)
            else:
                self._forget(key, flight)
            return produced, snapshot

        def finished(task: asyncio.Task[tuple[Any, Any]]) -> None:
            if not task.cancelled():
                task.exception()  # retrieved here too: every waiter may have left already

        flight = _Flight(asyncio.get_running_loop().create_task(generate()))
        flight.task.add_done_callback(finished)
        self._flights[key] = flight
        return flight

    def _keep(self, key: str, flight: _Flight) -> None:
        """Leave a finished flight in the table for `linger` seconds."""
        self._finished[key] = flight
        self._finished.move_to_end(key)
        while len(self._finished) > LINGERING:
            self._forget(*self._finished.popitem(last=False))
        asyncio.get_running_loop().call_later(self.linger, self._forget, key, flight)

    def _forget(self, key: str, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if self._finished.get(key) is flight:
            del self._finished[key]

    def in_flight(self) -> int:
        """Number of keys currently being produced (for /metrics or tests)."""
        return len(self._flights) - len(self._finished)


# Seconds a finished flight answers identical requests: a burst on a busy 2-core host took
# 10-14 s to arrive and be read (300 requests, Redis' pool of 16 failing some lookups open).
LINGER = 30.0
LINGERING = 256  # finished flights kept at most (each holds one Message)
