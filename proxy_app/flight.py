"""Single-flight: identical requests in flight at the same moment share one generation.

Claude Code re-sends a turn it believes timed out; without this, the same long prefill would
run two or three times on the GPU at once. The table is per process: with several uvicorn
workers each worker has its own.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Flight:
    __slots__ = ("done", "followers")

    def __init__(self, done: asyncio.Future[tuple[bool, Any]]) -> None:
        self.done = done
        self.followers = 0


class SingleFlight:
    """One leader per key produces; followers arriving meanwhile get a copy of its result."""

    def __init__(self) -> None:
        self.leaders = 0
        self.followers = 0
        self._flights: dict[str, _Flight] = {}

    async def run_once(self, key: str, produce: Callable[[], Awaitable[T]]) -> T:
        """Run ``produce`` once for all concurrent callers with the same ``key`` in this process.

        The first caller (the leader) runs ``produce()``; callers arriving while it runs
        (followers) wait for it. ``produce`` should return the final Message dict, or None when
        the result is not cacheable (error, aborted stream, …).

        * leader returns a non-None value -> every follower gets its own deep copy of it;
        * leader returns None, raises, or is cancelled -> followers do not hang and do not see
          the leader's exception: each runs its own ``produce()`` concurrently (no second round
          of single-flight, so an uncacheable request is never serialised);
        * a cancelled follower does not affect the leader or the other followers.

        The leader's own exception propagates to the leader only. The flight table is
        per-process (and per event loop use): each uvicorn worker has its own. Only use this for
        requests where sharing one answer is acceptable, i.e. ``cacheable_request`` is True.
        """
        flight = self._flights.get(key)
        if flight is not None:
            self.followers += 1
            flight.followers += 1
            ok, value = await asyncio.shield(flight.done)
            if ok and value is not None:
                result: T = copy.deepcopy(value)
                return result
            return await produce()

        flight = _Flight(asyncio.get_running_loop().create_future())
        self._flights[key] = flight
        self.leaders += 1
        outcome: tuple[bool, Any] = (False, None)
        try:
            produced = await produce()
            # Snapshot for the followers now, so that later changes by the leader's caller to
            # its own object cannot leak into what they receive.
            snapshot = copy.deepcopy(produced) if flight.followers else produced
            outcome = (True, snapshot)
            return produced
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if not flight.done.done():
                flight.done.set_result(outcome)

    def in_flight(self) -> int:
        """Number of keys currently being produced by a leader (for /metrics or tests)."""
        return len(self._flights)
