"""One generation: plan the upstream call, relay Ollama's stream through the state machine.

`plan` does every check that can fail before a response starts (model present, prompt fits),
so those failures are HTTP errors. `relay` runs Ollama's stream in its own task and yields
the machine's events, or None when a ping is due; closing the generator (a client disconnect)
cancels that task, which closes the upstream connection so Ollama stops generating.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from proxy_app.aliases import resolve_model
from proxy_app.anthropic import CountTokensRequest
from proxy_app.config import Settings
from proxy_app.errors import NotFoundError, PromptTooLongError, UpstreamError
from proxy_app.ollama import ModelCatalog, OllamaClient
from proxy_app.streaming import AnthropicEventStream, Event
from proxy_app.tokens import TokenEstimator
from proxy_app.translate import Upstream, to_ollama_request, wants_thinking

_END = object()


@dataclass
class Plan:
    requested_model: str
    upstream_model: str
    digest: str
    upstream: Upstream
    estimate: int

    def machine(self) -> AnthropicEventStream:
        return AnthropicEventStream(
            model=self.requested_model,
            input_tokens=self.estimate,
            tool_names=self.upstream.tool_names,
            stop_sequences=self.upstream.stop_sequences,
        )


async def plan(
    request: CountTokensRequest,
    *,
    settings: Settings,
    catalog: ModelCatalog,
    estimator: TokenEstimator,
    check_fit: bool = True,
) -> Plan:
    """Resolve the model, translate the request and refuse a prompt that cannot fit."""
    upstream_model = resolve_model(request.model, settings.default_model, settings.model_aliases)
    digest = await catalog.digest(upstream_model)
    if digest is None:
        raise NotFoundError(
            f"model: '{upstream_model}' (requested as '{request.model}') is not available in "
            f"Ollama; pull it with `ollama pull {upstream_model}`."
        )
    think = wants_thinking(request) and "thinking" in await catalog.capabilities(upstream_model)
    upstream = to_ollama_request(
        request,
        model=upstream_model,
        num_ctx=settings.num_ctx,
        keep_alive=settings.keep_alive,
        think=think,
    )
    estimate = estimator.estimate(upstream.payload)
    if check_fit and estimate > settings.num_ctx:
        raise PromptTooLongError(estimate, settings.num_ctx)
    return Plan(request.model, upstream_model, digest, upstream, estimate)


async def relay(
    ollama: OllamaClient,
    plan: Plan,
    machine: AnthropicEventStream,
    *,
    ping_interval: float,
    num_ctx: int,
) -> AsyncIterator[Event | None]:
    """Yield the machine's events for Ollama's stream; None means "send a ping now"."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for chunk in ollama.chat_stream(plan.upstream.payload):
                queue.put_nowait(chunk)
            queue.put_nowait(_END)
        except Exception as exc:  # handed to the consumer, which raises it
            queue.put_nowait(exc)

    task = asyncio.create_task(pump())
    try:
        while not machine.done:
            try:
                item = await asyncio.wait_for(queue.get(), ping_interval)
            except asyncio.TimeoutError:
                yield None
                continue
            if isinstance(item, PromptTooLongError):
                raise PromptTooLongError(plan.estimate, num_ctx) from item
            if isinstance(item, Exception):
                raise item
            if item is _END:
                raise UpstreamError("Ollama closed the stream before its final chunk.")
            events = machine.finish(item) if item.get("done") else machine.feed(item)
            for event in events:
                yield event
    finally:
        task.cancel()
