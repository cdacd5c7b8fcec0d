"""An answer timed for /metrics: how long its request waited, and its first content token.

`Timed` wraps the answer a route hands to its response (generation.Answer). Its first
batch means the generation started answering (Ollama's first byte, or for a single-flight
follower the shared Message): `proxy_queue_wait_seconds`. Its first batch carrying a
`content_block_delta`, streamed: `proxy_time_to_first_token_seconds`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from proxy_app.api.streaming import Event
from proxy_app.generation import Answer
from proxy_app.metrics import Metrics


class Timed:
    """`answer` (an Answer), observed from `arrived` (time.perf_counter at the request's start)."""

    def __init__(self, answer: Answer, metrics: Metrics, *, arrived: float, stream: bool) -> None:
        self.answer = answer
        self.metrics = metrics
        self.arrived = arrived
        self.stream = stream

    def start(self) -> list[Event]:
        return self.answer.start()

    def message(self) -> dict[str, Any]:
        return self.answer.message()

    async def __aiter__(self) -> AsyncIterator[list[Event]]:
        waiting, first_token = True, self.stream
        async for batch in self.answer:
            elapsed = time.perf_counter() - self.arrived
            if waiting:
                self.metrics.queue_wait.observe(elapsed)
                waiting = False
            if first_token and any(name == "content_block_delta" for name, _ in batch):
                self.metrics.time_to_first_token.observe(elapsed)
                first_token = False
            yield batch
