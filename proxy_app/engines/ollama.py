"""Thin async client for Ollama's native API, and the model catalog built on /api/tags."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from proxy_app.engines.http import EngineClient, upstream_error
from proxy_app.engines.listing import ModelListing
from proxy_app.engines.profile import ModelProfile
from proxy_app.errors import UpstreamError

# Generation endpoints: a conversation Ollama renders with its template, or a prompt
# proxy_app rendered itself, sent raw (generation.py says which).
CHAT, COMPLETION = "/api/chat", "/api/generate"


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


class ModelCatalog(ModelListing):
    """Ollama's /api/tags by canonical model name (proxy_app.engines.listing), its /api/show
    profiles, and the windows PROXY_NUM_CTX / PROXY_MODEL_NUM_CTX give its models."""

    def __init__(
        self, client: OllamaClient, windows: Callable[[str], int], ttl: float = 10.0
    ) -> None:
        super().__init__(ttl)
        self._client = client
        self._windows = windows
        self._profiles: dict[str, ModelProfile] = {}

    async def fetch(self) -> dict[str, dict[str, Any]]:
        """/api/tags: {canonical name: its entry (digest, modified_at, details…)}."""
        tags = await self._client.get_json("/api/tags", timeout=5.0)
        return {
            canonical_name(m.get("name") or m.get("model", "")): m for m in tags.get("models", [])
        }

    def key(self, name: str) -> str:
        return canonical_name(name)

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
