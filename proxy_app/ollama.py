"""Thin async client for Ollama's native API, and the model catalog built on /api/tags."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from proxy_app.errors import (
    ContextOverflowError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    ProxyError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from proxy_app.redact import redact_url

JSON_HEADERS = {"content-type": "application/json"}
# Generation endpoints: a conversation Ollama renders with its template, or a prompt
# proxy_app rendered itself, sent raw (generation.py says which).
CHAT, COMPLETION = "/api/chat", "/api/generate"

# Ollama's wording for a prompt over num_ctx when `truncate` is false.
OVERFLOW_MARKERS = ("exceeds the context length", "context length exceeded", "prompt is too long")


class OllamaClient:
    """Calls Ollama; every failure comes out as a ProxyError subclass."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)  # for messages and logs: no credentials
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=None)
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=32)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, limits=limits, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

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
        with self._translate_failures(path):
            async with self._http.stream(
                "POST", path, content=body, headers=JSON_HEADERS
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise upstream_error(response.status_code, _error_text(response.content))
                yield _chunks(response, path)

    async def chat(self, body: bytes, path: str = CHAT) -> dict[str, Any]:
        """A non-streaming /api/chat or /api/generate (`body` has `"stream": false`): one final
        chunk, in /api/chat's shape."""
        answer: dict[str, Any] = await self._request("POST", path, body, None)
        return as_chat_chunk(answer) if path == COMPLETION else answer

    async def get_json(self, path: str, *, timeout: float | None = None) -> Any:
        return await self._request("GET", path, None, timeout)

    async def post_json(
        self, path: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> Any:
        return await self._request("POST", path, orjson.dumps(body), timeout)

    async def _request(
        self, method: str, path: str, body: bytes | None, timeout: float | None
    ) -> Any:
        with self._translate_failures(path):
            response = await self._http.request(
                method,
                path,
                content=body,
                headers=JSON_HEADERS,
                timeout=timeout or httpx.USE_CLIENT_DEFAULT,
            )
            if response.status_code != 200:
                raise upstream_error(response.status_code, _error_text(response.content))
            return orjson.loads(response.content)

    @contextmanager
    def _translate_failures(self, path: str) -> Iterator[None]:
        """Timeouts and connection failures as the ProxyErrors a client can act on."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(
                f"Ollama at {self.shown_url} did not answer {path} in time "
                f"({type(exc).__name__}); raise PROXY_READ_TIMEOUT for very long generations."
            ) from exc
        except httpx.TransportError as exc:
            raise OverloadedError(
                f"Ollama at {self.shown_url} is unreachable "
                f"({redact_url(str(exc)) or type(exc).__name__}); "
                "check that `ollama serve` is running."
            ) from exc
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"Ollama sent {path} an answer that is not valid JSON: {exc}"
            ) from exc


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
            raise upstream_error(500, str(chunk["error"]), mid_stream=True)
        if path == COMPLETION:
            chunk = as_chat_chunk(chunk)
        if chunk.get("done"):
            final = chunk  # handed out once the body is read: the connection is reused
        else:
            yield chunk
    if final is not None:
        yield final


def upstream_error(status: int, message: str, *, mid_stream: bool = False) -> ProxyError:
    """Map an Ollama error (status + its `error` text) onto Anthropic's error classes."""
    lowered = message.lower()
    if any(marker in lowered for marker in OVERFLOW_MARKERS):
        return ContextOverflowError(f"Ollama: {message}")
    if mid_stream:
        return UpstreamError(f"Ollama failed while generating: {message}")
    if status == 404:
        return NotFoundError(f"Ollama: {message}")
    if status == 429:
        return RateLimitError(f"Ollama: {message}", retry_after=5)
    if status == 503:
        return OverloadedError(f"Ollama is busy (its queue is full): {message}")
    if 400 <= status < 500:
        return InvalidRequestError(f"Ollama rejected the request: {message}")
    return UpstreamError(f"Ollama answered {status}: {message}")


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip() or "(empty body)"
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return str(data)


def canonical_name(name: str) -> str:
    """Ollama's implicit tag: `qwen2.5-coder` means `qwen2.5-coder:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


@dataclass(frozen=True)
class ModelProfile:
    """What /api/show says about a model that changes its prompt: family, template, SYSTEM."""

    family: str = ""
    template: str = ""
    system: str = ""
    capabilities: tuple[str, ...] = ()
    renderer: str = ""  # a built-in renderer instead of the template (e.g. "qwen3-coder")

    @classmethod
    def from_show(cls, shown: dict[str, Any]) -> ModelProfile:
        details = shown.get("details") or {}
        info = shown.get("model_info") or {}
        family = details.get("family") or info.get("general.architecture") or ""
        return cls(
            family=str(family),
            template=str(shown.get("template") or ""),
            system=str(shown.get("system") or ""),
            capabilities=tuple(shown.get("capabilities") or ()),
            renderer=str(shown.get("renderer") or ""),
        )


class ModelCatalog:
    """Ollama's /api/tags by canonical model name, refreshed every `ttl` seconds or on a miss."""

    def __init__(self, client: OllamaClient, ttl: float = 10.0) -> None:
        self._client = client
        self._ttl = ttl
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
