"""Protocol limits: uvicorn's httptools protocol with a header cap, a request timeout and a
connection cap that keeps /health reachable.

uvicorn has `timeout_keep_alive` (used: PROXY_IDLE_TIMEOUT) but, with httptools, no limit on
the header block (httptools joins header fragments by concatenation, so a huge header costs
quadratic CPU), no timeout for a request that arrives slowly, and `limit_concurrency` answers
503 plain text to everyone — /health included — once the cap is reached. This subclass adds:

* PROXY_MAX_HEADER_BYTES: the request line and headers are counted before parsing; past the
  limit the client gets 431 and the connection closes, whatever the header's size. A chunked
  body's trailers (headers after the last chunk, which httptools also joins by concatenation)
  count against the same limit, with the chunks' framing allowed on top;
* PROXY_CLIENT_TIMEOUT: a request must arrive completely (headers and body) within it, else
  408 and close; a new connection that sends nothing is closed after PROXY_IDLE_TIMEOUT;
* PROXY_MAX_CONNECTIONS (kept below the open-file limit): at the cap a new connection
  evicts the longest-idle connection that has no request running; when every connection is
  busy it is answered 529 `overloaded_error` and closed.

Those answers, and the 400 for a request httptools cannot parse (uvicorn's is plain text),
are written by the protocol itself, in Anthropic's error envelope.
"""

from __future__ import annotations

import asyncio
import http
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy_app.config import Settings
from proxy_app.errors import new_request_id

# Descriptors kept for everything but clients: Ollama's pool (256), Redis' pool, files, logs.
RESERVED_FDS = 256 + 64
# Bytes of framing allowed per chunk besides its data: up to 16 hex digits of size and two
# CRLFs (20), and some room for whitespace or a short extension.
CHUNK_FRAMING = 32


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int
    client_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            client_timeout=settings.client_timeout,
            max_connections=connection_cap(settings),
        )


def connection_cap(settings: Settings) -> int:
    """PROXY_MAX_CONNECTIONS, lowered when the open-file limit could not hold that many."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - RESERVED_FDS - settings.redis_max_connections
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    return max(min(settings.max_connections, room), 16)


def raise_fd_limit() -> None:
    """Raise the soft open-file limit to the hard one (systemd's default soft limit is 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def uvicorn_options(settings: Settings, *, bind: bool = True) -> dict[str, Any]:
    """uvicorn settings for proxy_app: the guarded protocol and the idle keep-alive bound.

    With `bind` the protocol class carries these settings (one process); without, each
    worker process reads them from its PROXY_* environment (a class cannot be pickled).
    """
    return {
        "http": protocol_class(settings) if bind else f"{__name__}:GuardedHttpProtocol",
        "timeout_keep_alive": settings.idle_timeout,
        # No WebSocket route: an `Upgrade: websocket` request is plain HTTP (the websockets
        # library would answer it 403 in plain text).
        "ws": "none",
        "proxy_headers": False,
        "server_header": False,
    }


def protocol_class(settings: Settings) -> type[GuardedHttpProtocol]:
    """A protocol class bound to these settings (one process; tests and `python -m`)."""
    limits = Limits.from_settings(settings)
    return type("BoundGuardedHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})


class GuardedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the limits above; unbound, it reads PROXY_* from the environment."""

    limits: ClassVar[Limits | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if type(self).limits is None:  # a worker process started from an import string
            type(self).limits = Limits.from_settings(Settings())
        assert self.limits is not None
        self.bound: Limits = self.limits
        self.head_bytes = 0
        self.reading_head = True
        self.head_tail = b""
        self.after_head = 0  # bytes received since the head: body, chunk framing, trailers
        self.body_bytes = 0
        self.chunks = 0
        self.request_timer: asyncio.TimerHandle | None = None
        self.last_active = self.loop.time()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.bound.max_connections and not self._evict_one():
            self.transport = transport
            message = "The proxy is at its connection limit (PROXY_MAX_CONNECTIONS); retry later."
            self._refuse(529, "overloaded_error", message, "connection_cap", retry_after=1)
            return
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer only after a response; a silent new connection
        # would otherwise stay open forever.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_request_timer()
        if self.flow is None:  # refused in connection_made: uvicorn never saw it
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        limit = self.bound.max_header_bytes
        if self.reading_head and self._head_too_large(data):
            message = f"The request headers are over the {limit}-byte limit."
            self._refuse(431, "invalid_request_error", message, "header_too_large")
            return
        if not self.reading_head:
            self.after_head += len(data)
        super().data_received(data)
        if not self._trailers_too_large():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # answered already (a 401 before the body): just stop
            return
        message = f"The request's trailers are over the {limit}-byte limit."
        self._refuse(431, "invalid_request_error", message, "header_too_large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._cancel_request_timer()
        self.request_timer = self.loop.call_later(self.bound.client_timeout, self._timed_out)

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self.chunks += 1

    def on_headers_complete(self) -> None:
        self.reading_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel_request_timer()
        self.reading_head, self.head_bytes, self.head_tail = True, 0, b""
        self.after_head = self.body_bytes = self.chunks = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:  # noqa: ARG002 - uvicorn's fixed sentence
        """Malformed HTTP (httptools could not parse it): 400 in Anthropic's envelope, not
        uvicorn's plain text; after a response has started, only the close."""
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        message = "The request is not valid HTTP/1.1 and could not be parsed."
        self._refuse(400, "invalid_request_error", message, "malformed_request")

    def idle(self) -> bool:
        """No request is running on this connection (it may be half-way through a head)."""
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def _head_too_large(self, data: bytes) -> bool:
        """Count the head's bytes; the end of the head may straddle two reads."""
        end = (self.head_tail + data).find(b"\r\n\r\n")
        counted = len(data) if end < 0 else max(end + 4 - len(self.head_tail), 0)
        self.head_tail = data[-3:]
        self.head_bytes += counted
        self.after_head += len(data) - counted
        return self.head_bytes > self.bound.max_header_bytes

    def _trailers_too_large(self) -> bool:
        """What arrived after the head that is neither body nor chunk framing is past the limit.

        Checked after each read, so the parser never holds more than the limit plus one read
        of a trailer: its cost stays linear in what the client sends.
        """
        unframed = self.after_head - self.body_bytes - CHUNK_FRAMING * self.chunks
        return unframed > self.bound.max_header_bytes and not self.transport.is_closing()

    def _evict_one(self) -> bool:
        """Close the longest-idle connection without a running request; False if none."""
        idle = [c for c in self.connections if isinstance(c, GuardedHttpProtocol) and c.idle()]
        idle = [c for c in idle if not c.transport.is_closing()]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.last_active)
        victim.connections.discard(victim)
        victim.transport.close()
        return True

    def _timed_out(self) -> None:
        self.request_timer = None
        if self.transport.is_closing() or (self.cycle is not None and self.cycle.response_started):
            return
        seconds = f"{self.bound.client_timeout:g}"
        message = f"The request did not arrive completely within {seconds} s."
        self._refuse(408, "timeout_error", message, "incomplete_request")

    def _cancel_request_timer(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None

    def _refuse(
        self,
        status: int,
        error_type: str,
        message: str,
        reason: str,
        *,
        retry_after: int | None = None,
    ) -> None:
        """Answer in Anthropic's envelope and close, without involving the app."""
        metrics = self.app_state.get("metrics")
        if metrics is not None:
            metrics.refused[reason] += 1
        request_id = new_request_id()
        body = orjson.dumps(
            {
                "type": "error",
                "error": {"type": error_type, "message": message},
                "request_id": request_id,
            }
        )
        reason = "Overloaded" if status == 529 else http.HTTPStatus(status).phrase
        head = [
            f"HTTP/1.1 {status} {reason}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            f"request-id: {request_id}",
            "connection: close",
        ]
        if retry_after is not None:
            head.append(f"retry-after: {retry_after}")
        self.transport.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        self.transport.close()
