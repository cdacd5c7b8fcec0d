"""What the response cache may do for one request, and the answer generated through it.

`cache_policy` decides per request (mode, `cache-control: no-cache` / `no-store`) and gives
the key; `ThroughCache` wraps a generation so that a complete answer is stored and identical
requests in flight share one generation (single-flight, proxy_app.cache.flight).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from proxy_app.api.streaming import Event, replay_events
from proxy_app.cache.store import ResponseCache
from proxy_app.generation import Generation, Plan

Message = dict[str, Any]


@dataclass(frozen=True)
class CachePolicy:
    """What the response cache may do for this request, and the `x-cache` header it earns."""

    key: str = ""
    read: bool = False
    write: bool = False

    @property
    def label(self) -> str:
        return "MISS" if self.read else "BYPASS"


def cache_policy(
    cache: ResponseCache, planned: Plan, *, api_key: str, directives: str
) -> CachePolicy:
    """The policy for a request whose `cache-control` header is `directives`."""
    material = planned.upstream.key_material()
    if not cache.cacheable_request(material):  # cache off, or not this request's mode
        cache.record_bypass()
        return CachePolicy()
    try:
        key = cache.key(api_key=api_key, model_digest=planned.digest, upstream=material)
    except RecursionError:  # nested too deeply to hash
        return CachePolicy()
    directives = directives.lower()
    policy = CachePolicy(key, read="no-cache" not in directives, write="no-store" not in directives)
    if not policy.read:
        cache.record_bypass()
    return policy


class ThroughCache:
    """`generation` through the cache (an `Answer`): its complete Message is stored when the
    policy allows, and a cacheable request that finds an identical one in flight waits for
    that generation instead of starting its own — its own `message_start`, then the shared
    Message replayed as one batch.

    The shared generation runs in the flight's own task, so its first requester leaving costs
    the others nothing; while it runs, its batches reach this answer's reader through a queue.
    """

    def __init__(
        self,
        cache: ResponseCache,
        policy: CachePolicy,
        generation: Generation,
        *,
        arrived: float = math.inf,
    ) -> None:
        self.cache = cache
        self.policy = policy
        self.generation = generation
        self.arrived = arrived  # time.perf_counter() at the request's arrival (flight.py)
        self._shared: Message | None = None  # the Message another request's generation made

    def start(self) -> list[Event]:
        return self.generation.start()

    def message(self) -> Message:
        own = self.generation.message()
        if self._shared is None:
            return own
        return {**self._shared, "id": own["id"], "model": own["model"]}

    async def __aiter__(self) -> AsyncIterator[list[Event]]:
        if not self.policy.read:
            async for batch in self.generation:
                yield batch
            await self._store()
            return
        live: asyncio.Queue[list[Event] | None] = asyncio.Queue()

        async def lead() -> Message:
            async for batch in self.generation:
                live.put_nowait(batch)
            return await self._store()

        # A flight whose answer was stored stays joinable once finished (flight.py's linger):
        # for a request reading the cache it is the hit a busy or failing Redis just missed.
        # One not stored (`no-store`) is joined only by requests that overlapped it.
        write = self.policy.write
        run = self.cache.flights.run(self.policy.key, lead, arrived=self.arrived, linger=write)
        flight = asyncio.ensure_future(run)
        flight.add_done_callback(lambda _: live.put_nowait(None))  # this reader's end
        try:
            while (item := await live.get()) is not None:
                yield item
            message, generated = flight.result()
            if not generated:
                self._shared = message
                own = self.message()
                yield replay_events(own, own["id"])[1:]
        finally:
            flight.cancel()  # this reader left: the flight stops once nobody else waits

    async def _store(self) -> Message:
        message = self.generation.message()
        if self.policy.write:
            await self.cache.put(self.policy.key, message)
        return message
