"""/health's dependency checks, each run at most once a second whatever the request rate.

/health needs no key, and each check costs the engine two calls (Ollama: /api/version and
/api/tags) and Redis a PING; answered live, a flood of health checks became a flood on the
engine. Here each
dependency's check runs in a task of its own, at most once per INTERVAL seconds: every
/health asked meanwhile shares that check's result (it waits for a check under way rather
than answering older news). `live=True` (/health?deep=1, behind the API key) checks now.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from proxy_app.cache.store import ResponseCache
from proxy_app.engines import Component, Engine

T = TypeVar("T")
INTERVAL = 1.0


class Refreshed(Generic[T]):
    """The result of `check`, run at most once per `interval` seconds and shared by all askers.

    The check runs in its own task: an asker that leaves does not cancel it for the others.
    """

    def __init__(self, check: Callable[[], Awaitable[T]], interval: float = INTERVAL) -> None:
        self.check = check
        self.interval = interval
        self.runs = 0
        self._started = -math.inf
        self._task: asyncio.Task[T] | None = None

    async def get(self) -> T:
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or (task.done() and loop.time() - self._started >= self.interval):
            self._started = loop.time()
            self.runs += 1
            task = self._task = loop.create_task(self._run())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(task)

    async def _run(self) -> T:
        return await self.check()


class Checks:
    """/health's answer from the engine's and the cache's refreshed state."""

    def __init__(self, *, model: str, engine: Engine, cache: ResponseCache) -> None:
        self.model = model
        self.engine = engine
        self.cache = cache
        self.engine_state = Refreshed(self.check_engine)
        self.cache_state = Refreshed(cache.health)

    async def report(self, *, live: bool = False) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): healthy, degraded or unhealthy (503), with each component."""
        if live:
            engine, cache = await asyncio.gather(self.check_engine(), self.cache.health())
        else:
            engine, cache = await asyncio.gather(self.engine_state.get(), self.cache_state.get())
        components = {**engine, "cache": cache}
        # Without the engine, cached answers for a model seen before are still served.
        from_cache = cache["status"] == "ok" and self.engine.catalog.known(self.model)
        if components[self.engine.kind]["status"] != "ok" and not from_cache:
            status = "unhealthy"
        elif any(c["status"] == "error" for c in components.values()):
            status = "degraded"
        else:
            status = "healthy"
        code = 503 if status == "unhealthy" else 200
        return code, {"status": status, "components": components}

    async def check_engine(self) -> dict[str, Component]:
        """The engine's components (it and the default model), checked now."""
        return await self.engine.check(self.model)
