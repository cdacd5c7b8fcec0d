"""Server-sent events: the only place SSE bytes are written, and the live stream's engine.

`format_event` frames one event. `LiveStream` frames one streamed answer (an async iterator
of event batches, proxy_app.generation.Answer): it holds the 200 briefly for Ollama's status,
then owns the queue between the answer and the socket, the pings and the cancellation when
the client leaves.

A streamed request waits up to PROXY_STREAM_WAIT seconds for Ollama to start answering
before the 200 and `message_start` are committed, so a fast failure (queue full, Ollama
down, unknown model, prompt too long) gets its real HTTP status and `retry-after`, which
clients retry; a slow prefill gets `message_start` and pings once the wait is over, so
Claude Code's idle watchdog never fires. After that, failures are SSE `error` events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from proxy_app.api.streaming import Event
from proxy_app.errors import ProxyError, UpstreamError, envelope
from proxy_app.generation import Answer

log = logging.getLogger("proxy_app")

Item = list[Event] | ProxyError | bytes | None
PING = b'event: ping\ndata: {"type":"ping"}\n\n'


def format_event(name: str, data: dict[str, Any]) -> bytes:
    """Frame one event; Anthropic's `type` field always equals the event name."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class LiveStream:
    """One streamed response. `open()` before the response starts, then iterate `frames()`.

    The answer is iterated in its own task: when the client disconnects the frames generator
    is closed, its `finally` cancels the task, and the upstream connection closes with it.
    The answer's first batch means "Ollama has started answering".
    """

    def __init__(self, answer: Answer, *, ping_interval: float, request_id: str) -> None:
        self.answer = answer
        self.ping_interval = ping_interval
        self.request_id = request_id
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.last_sent = self.loop.time()
        self.answering = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.failure: ProxyError | None = None

    async def open(self, wait: float) -> None:
        """Start the generation; raise its error if it fails before Ollama starts answering.

        Returns once Ollama answers, or after `wait` seconds of silence (a long prefill).
        """
        run = asyncio.create_task(self._run())
        self.tasks.append(run)
        answering = asyncio.create_task(self.answering.wait())
        await asyncio.wait({run, answering}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        answering.cancel()
        if self.failure is not None and not self.answering.is_set():
            raise self.failure
        self.tasks.append(asyncio.create_task(self._keep_alive()))

    async def frames(self) -> AsyncIterator[bytes]:
        """message_start and a ping at once, then the events as they come, batched."""
        try:
            self.last_sent = self.loop.time()
            yield b"".join(format_event(*event) for event in self.answer.start()) + PING
            while True:
                items = [await self.queue.get()]
                while not self.queue.empty():  # everything produced meanwhile goes in one write
                    items.append(self.queue.get_nowait())
                end = next((i for i, item in enumerate(items) if _final(item)), None)
                yield b"".join(
                    self._frame(item) for item in items[: None if end is None else end + 1]
                )
                if end is not None:
                    return
        finally:
            self.close()

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def _run(self) -> None:
        try:
            async for batch in self.answer:
                self.answering.set()
                self.last_sent = self.loop.time()
                self.queue.put_nowait(batch)
            self.queue.put_nowait(None)
        except Exception as exc:
            if not isinstance(exc, ProxyError):
                log.exception("streamed request %s failed", self.request_id)
            self.failure = exc if isinstance(exc, ProxyError) else UpstreamError()
            self.queue.put_nowait(self.failure)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(max(self.ping_interval - (self.loop.time() - self.last_sent), 0.01))
            if self.loop.time() - self.last_sent >= self.ping_interval:
                self.last_sent = self.loop.time()
                self.queue.put_nowait(PING)

    def _frame(self, item: Item) -> bytes:
        """SSE bytes for one queue item (a ping is already framed; the end is empty)."""
        if item is None:
            return b""
        if isinstance(item, bytes):
            return item
        if isinstance(item, ProxyError):
            return format_event("error", envelope(item, self.request_id))
        return b"".join(format_event(*event) for event in item)


def _final(item: object) -> bool:
    """The generation ended (None) or failed: nothing follows this item."""
    return item is None or isinstance(item, ProxyError)
