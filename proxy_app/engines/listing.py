"""The models an engine lists, by name: what both engines' catalogs share.

The list is fetched again every `ttl` seconds or on a miss. While the engine is unreachable or
slow the last list is kept (for another `ttl`), so cached answers for a model seen before are
still served; a model never seen raises the error.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from proxy_app.errors import OverloadedError, ProxyError, UpstreamTimeoutError

Component = dict[str, Any]  # one /health component: {"status": "ok" | "error", ...}


class ModelListing:
    """Subclasses say how to fetch the list (`fetch`) and how a name is written (`key`)."""

    def __init__(self, ttl: float = 10.0) -> None:
        self._ttl = ttl
        self._models: dict[str, dict[str, Any]] = {}
        self._fetched = 0.0

    async def fetch(self) -> dict[str, dict[str, Any]]:
        """The engine's list now: {name: its entry, with a `digest`}."""
        raise NotImplementedError

    def key(self, name: str) -> str:
        """How the engine writes `name` in its list."""
        return name

    async def refresh(self) -> dict[str, dict[str, Any]]:
        """Ask the engine now: {model name: its entry (`digest`, `modified_at`…)}."""
        self._models = await self.fetch()
        self._fetched = time.monotonic()
        return self._models

    async def digest(self, name: str) -> str | None:
        """The model's digest, or None when the engine does not serve it (after a fresh look)."""
        name = self.key(name)
        if name not in self._models or time.monotonic() - self._fetched > self._ttl:
            try:
                await self.refresh()
            except (OverloadedError, UpstreamTimeoutError):
                if name not in self._models:
                    raise
                self._fetched = time.monotonic()  # do not knock on a dead engine every request
        entry = self._models.get(name)
        return None if entry is None else str(entry.get("digest", ""))

    async def has(self, name: str) -> bool:
        return await self.digest(name) is not None

    def known(self, name: str) -> bool:
        """Whether the model was in the last list the engine answered (no call)."""
        return self.key(name) in self._models

    async def check(
        self,
        kind: str,
        probe: Callable[[], Awaitable[dict[str, Any]]],
        model: str,
        missing: Callable[[str], str],
    ) -> dict[str, Component]:
        """/health's components, checked now: the engine (`kind`: `probe()`'s facts) and
        whether it lists `model` (else the error `missing(model)` words)."""
        model = self.key(model)
        try:
            engine = {"status": "ok", **await probe()}
            models = await self.refresh()
        except ProxyError as exc:
            return {
                kind: {"status": "error", "error": exc.message},
                "model": {"status": "unknown", "name": model},
            }
        if model not in models:
            error = missing(model)
            return {kind: engine, "model": {"status": "error", "name": model, "error": error}}
        digest = str(models[model].get("digest", ""))
        return {kind: engine, "model": {"status": "ok", "name": model, "digest": digest}}
