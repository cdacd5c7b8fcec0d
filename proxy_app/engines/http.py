"""The HTTP side every engine client shares: one pooled httpx client, JSON calls, and every
failure (timeouts, refused connections, error answers) as the ProxyError a client can act on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import httpx
import orjson

from proxy_app.config import Settings
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
# The engines' wording for a prompt over the window: Ollama's (`truncate: false`), llama.cpp's
# (`exceed_context_size_error`: "the request exceeds the available context size") and vLLM's.
OVERFLOW_MARKERS = (
    "exceeds the context length",
    "context length exceeded",
    "prompt is too long",
    "exceeds the available context size",
    "maximum context length",
)


Client = TypeVar("Client", bound="EngineClient")


class EngineClient:
    """Calls an engine over HTTP; every failure comes out as a ProxyError subclass."""

    label = "The engine"  # how messages name it
    unreachable_hint = "check that it is running"

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

    @classmethod
    def for_settings(cls: type[Client], settings: Settings) -> Client:
        """A client of PROXY_ENGINE_URL with PROXY_CONNECT_TIMEOUT and PROXY_READ_TIMEOUT."""
        return cls(
            settings.engine_url,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    @asynccontextmanager
    async def open_stream(self, path: str, body: bytes) -> AsyncIterator[httpx.Response]:
        """POST a streamed request; inside, the response once the engine answered 200 (its
        error otherwise); leaving closes the connection, so the engine stops generating."""
        with self._translate_failures(path):
            async with self._http.stream(
                "POST", path, content=body, headers=JSON_HEADERS
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self.error(response.status_code, response.content)
                yield response

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
                raise self.error(response.status_code, response.content)
            return orjson.loads(response.content)

    @contextmanager
    def _translate_failures(self, path: str) -> Iterator[None]:
        """Timeouts and connection failures as the ProxyErrors a client can act on."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(
                f"{self.label} at {self.shown_url} did not answer {path} in time "
                f"({type(exc).__name__}); raise PROXY_READ_TIMEOUT for very long generations."
            ) from exc
        except httpx.TransportError as exc:
            raise OverloadedError(
                f"{self.label} at {self.shown_url} is unreachable "
                f"({redact_url(str(exc)) or type(exc).__name__}); "
                f"{self.unreachable_hint}."
            ) from exc
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"{self.label} sent {path} an answer that is not valid JSON: {exc}"
            ) from exc

    def error(self, status: int, body: bytes) -> ProxyError:
        return upstream_error(self.label, status, error_text(body))


def upstream_error(
    label: str, status: int, message: str, *, mid_stream: bool = False
) -> ProxyError:
    """Map an engine's error (status + its `error` text) onto Anthropic's error classes."""
    lowered = message.lower()
    if any(marker in lowered for marker in OVERFLOW_MARKERS):
        return ContextOverflowError(f"{label}: {message}")
    if mid_stream:
        return UpstreamError(f"{label} failed while generating: {message}")
    if status == 404:
        return NotFoundError(f"{label}: {message}")
    if status == 429:
        return RateLimitError(f"{label}: {message}", retry_after=5)
    if status == 503:
        return OverloadedError(f"{label} is busy (its queue is full): {message}")
    if 400 <= status < 500:
        return InvalidRequestError(f"{label} rejected the request: {message}")
    return UpstreamError(f"{label} answered {status}: {message}")


def error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip() or "(empty body)"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):  # OpenAI's shape: {"error": {"message", "type", "code"}}
        return str(error.get("message") or error)
    if error is not None:  # Ollama's: {"error": "…"}
        return str(error)
    return str(data)
