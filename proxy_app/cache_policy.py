"""What the response cache may do for one request, and the generation shared through it.

`cache_policy` decides per request (mode, `cache-control: no-cache` / `no-store`) and gives
the key; `through_cache` runs a generation so that identical requests in flight share one
(single-flight, proxy_app.flight) and a complete answer is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from proxy_app.cache import ResponseCache
from proxy_app.generation import Plan
from proxy_app.sse import Emit
from proxy_app.streaming import replay_events

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
    except RecursionError:  # nested too deeply to hash: Plan.encode refuses it next
        return CachePolicy()
    directives = directives.lower()
    policy = CachePolicy(key, read="no-cache" not in directives, write="no-store" not in directives)
    if not policy.read:
        cache.record_bypass()
    return policy


async def through_cache(
    cache: ResponseCache,
    policy: CachePolicy,
    generate: Callable[[Emit], Awaitable[Message]],
    emit: Emit,
    *,
    message_id: str,
) -> Message:
    """Run `generate(emit)`, storing its answer when the policy allows.

    A cacheable request that finds an identical one in flight waits for that generation
    instead of starting its own; its events are then replayed (after its own message_start).
    """

    async def generate_and_store() -> Message:
        message = await generate(emit)
        if policy.write:
            await cache.put(policy.key, message)
        return message

    if not policy.read:
        return await generate_and_store()
    message, generated = await cache.flights.run(policy.key, generate_and_store)
    if not generated:
        emit(replay_events({**message, "id": message_id}, message_id)[1:])
    return message
