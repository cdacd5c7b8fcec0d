"""Thin async client for Ollama's native API, and the model catalog built on /api/tags."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from proxy_app.engines.http import EngineClient, upstream_error
from proxy_app.engines.profile import ModelProfile
from proxy_app.errors import OverloadedError, UpstreamError, UpstreamTimeoutError

# Generation endpoints: a conversation Ollama renders with its template, or a prompt
# proxy_app rendered itself, sent raw (generation.py says which).
CHAT, COMPLETION = "/api/chat", "/api/generate"
DEFAULT_NUM_CTX = 32768  # Settings.num_ctx's default


class OllamaClient(EngineClient):
    """Calls Ollama; every failure comes out as a ProxyError subclass."""

    label = "Ollama"
    unreachable_hint = "check that `ollama serve` is running"

    @asynccontextmanager
    async def chat_stream(
        self, body: bytes, path: str = CHAT
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Open a streaming /api/chat, or a raw /api/generate (`path`; `body` has `"stream":
        true`); inside, iterate its NDJSON chunks as /api/chat chunks (a mid-stream `error` line
        raises).

        Entering returns once Ollama has answered 200 (with real Ollama: its first token) and
        raises its error otherwise; leaving closes the connection, so Ollama stops generating.
        """
        async with self.open_stream(path, body) as response:
            yield _chunks(response, path)

    async def chat(self, body: bytes, path: str = CHAT) -> dict[str, Any]:
        """A non-streaming /api/chat or /api/generate (`body` has `"stream": false`): one final
        chunk, in /api/chat's shape."""
        answer: dict[str, Any] = await self._request("POST", path, body, None)
        return as_chat_chunk(answer) if path == COMPLETION else answer


def as_chat_chunk(chunk: dict[str, Any]) -> dict[str, Any]:
    """An /api/generate chunk in /api/chat's shape: its `response` text as the message."""
    rest = {key: value for key, value in chunk.items() if key not in ("response", "context")}
    return {**rest, "message": {"role": "assistant", "content": chunk.get("response") or ""}}


async def _chunks(response: httpx.Response, path: str) -> AsyncIterator[dict[str, Any]]:
    """The chunks of an open stream, in /api/chat's shape; the final one once the body is
    fully read."""
    final = None
    async for line in response.aiter_lines():
        if not line.strip():
            continue
        chunk = orjson.loads(line)
        if not isinstance(chunk, dict):
            raise UpstreamError(f"Ollama sent a non-object line: {line[:200]!r}")
        if "error" in chunk:
            raise upstream_error("Ollama", 500, str(chunk["error"]), mid_stream=True)
        if path == COMPLETION:
            chunk = as_chat_chunk(chunk)
        if chunk.get("done"):
            final = chunk  # handed out once the body is read: the connection is reused
        else:
            yield chunk
    if final is not None:
        yield final


def canonical_name(name: str) -> str:
    """Ollama's implicit tag: `qwen2.5-coder` means `qwen2.5-coder:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class ModelCatalog:
    """Ollama's /api/tags by canonical model name, refreshed every `ttl` seconds or on a miss."""

    def __init__(
        self, client: OllamaClient, ttl: float = 10.0, windows: Callable[[str], int] | None = None
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._windows = windows or (lambda _name: DEFAULT_NUM_CTX)  # PROXY_NUM_CTX by model
        self._tags: dict[str, dict[str, Any]] = {}
        self._fetched = 0.0
        self._profiles: dict[str, ModelProfile] = {}

    async def refresh(self) -> dict[str, dict[str, Any]]:
        """Fetch /api/tags now: {canonical name: its entry (digest, modified_at, details…)}."""
        tags = await self._client.get_json("/api/tags", timeout=5.0)
        self._tags = {
            canonical_name(m.get("name") or m.get("model", "")): m for m in tags.get("models", [])
        }
        self._fetched = time.monotonic()
        return self._tags

    async def digest(self, name: str) -> str | None:
        """The model's digest, or None when Ollama does not have it (after a fresh look).

        While Ollama is unreachable the last known digest is kept (for another `ttl`), so
        cached answers are still served; a model never seen raises the error.
        """
        name = canonical_name(name)
        if name not in self._tags or time.monotonic() - self._fetched > self._ttl:
            try:
                await self.refresh()
            except (OverloadedError, UpstreamTimeoutError):
                if name not in self._tags:
                    raise
                self._fetched = time.monotonic()  # do not knock on a dead Ollama every request
        entry = self._tags.get(name)
        return None if entry is None else str(entry.get("digest", ""))

    async def has(self, name: str) -> bool:
        return await self.digest(name) is not None

    def known(self, name: str) -> bool:
        """Whether the model was in the last /api/tags Ollama answered."""
        return canonical_name(name) in self._tags

    async def profile(self, name: str) -> ModelProfile:
        """From /api/show, cached per digest (a re-pulled model is asked again)."""
        digest = await self.digest(name) or name
        if digest not in self._profiles:
            shown = await self._client.post_json("/api/show", {"model": name}, timeout=10.0)
            self._profiles[digest] = ModelProfile.from_show(shown)
        return self._profiles[digest]

    async def capabilities(self, name: str) -> list[str]:
        """From /api/show; an old Ollama without the field means none known."""
        return list((await self.profile(name)).capabilities)

    async def window(self, name: str) -> int:
        """num_ctx, sent with every request (PROXY_NUM_CTX, PROXY_MODEL_NUM_CTX)."""
        return self._windows(name)

    def missing(self, name: str) -> str:
        return f"pull it with `ollama pull {name}`"
