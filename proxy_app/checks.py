"""/health's dependency checks, each run at most once a second whatever the request rate.

/health needs no key, and each check costs Ollama two calls (/api/version, /api/tags) and
Redis a PING; answered live, a flood of health checks became a flood on Ollama. Here each
dependency's check runs in a task of its own, at most once per INTERVAL seconds: every
/health asked meanwhile shares that check's result (it waits for a check under way rather
than answering older news). `live=True` (/health?deep=1, behind the API key) checks now.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from proxy_app.cache import ResponseCache
from proxy_app.errors import ProxyError
from proxy_app.ollama import ModelCatalog, OllamaClient, canonical_name

T = TypeVar("T")
Component = dict[str, Any]
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
    """/health's answer from Ollama's and the cache's refreshed state."""

    def __init__(
        self, *, model: str, ollama: OllamaClient, catalog: ModelCatalog, cache: ResponseCache
    ) -> None:
        self.model = canonical_name(model)
        self.ollama = ollama
        self.catalog = catalog
        self.cache = cache
        self.ollama_state = Refreshed(self.check_ollama)
        self.cache_state = Refreshed(cache.health)

    async def report(self, *, live: bool = False) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): healthy, degraded or unhealthy (503), with each component."""
        if live:
            ollama, cache = await asyncio.gather(self.check_ollama(), self.cache.health())
        else:
            ollama, cache = await asyncio.gather(self.ollama_state.get(), self.cache_state.get())
        components = {**ollama, "cache": cache}
        # Without Ollama, cached answers for a model seen before are still served.
        from_cache = cache["status"] == "ok" and self.catalog.known(self.model)
        if components["ollama"]["status"] != "ok" and not from_cache:
            status = "unhealthy"
        elif any(c["status"] == "error" for c in components.values()):
            status = "degraded"
        else:
            status = "healthy"
        code = 503 if status == "unhealthy" else 200
        return code, {"status": status, "components": components}

    async def check_ollama(self) -> dict[str, Component]:
        """Ollama's version and whether it has the default model (two calls)."""
        model = self.model
        try:
            version = await self.ollama.get_json("/api/version", timeout=3.0)
            models = await self.catalog.refresh()
        except ProxyError as exc:
            return {
                "ollama": {"status": "error", "error": exc.message},
                "model": {"status": "unknown", "name": model},
            }
        ollama = {"status": "ok", "version": version.get("version", "")}
        if model not in models:
            error = f"model {model} is not pulled; run `ollama pull {model}`"
            return {"ollama": ollama, "model": {"status": "error", "name": model, "error": error}}
        digest = str(models[model].get("digest", ""))
        return {"ollama": ollama, "model": {"status": "ok", "name": model, "digest": digest}}
