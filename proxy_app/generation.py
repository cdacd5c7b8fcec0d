"""One generation: the plan of the engine call, then the engine's answer as Anthropic events.

`Backend.plan` and `Backend.count` do every check that can fail before a response starts
(model present; body encodable, prompt fits), so those failures are HTTP errors rather than SSE
error events; the `Plan` and `Counted` they return are immutable, and a `Generation` can only
be made from a `Counted`. `Generation` is the answer as an async iterator
of Anthropic event batches, one per upstream step, that a non-streaming response drains and a
streaming one frames (proxy_app.api.sse).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from proxy_app.aliases import route_model
from proxy_app.api.anthropic import CountTokensRequest, content_blocks
from proxy_app.api.streaming import Event
from proxy_app.config import Settings
from proxy_app.engines import Catalog, Engine
from proxy_app.engines.profile import ModelProfile
from proxy_app.errors import (
    ContextOverflowError,
    NotFoundError,
    PromptTooLongError,
    ProxyError,
    UpstreamError,
)
from proxy_app.metrics import Metrics
from proxy_app.offload import INLINE_BLOCKS, Offload
from proxy_app.plan import Counted, Plan, prompt_limit
from proxy_app.translate import to_ollama_request, wants_thinking

__all__ = ["Answer", "Backend", "Counted", "Generation", "Plan"]

Message = dict[str, Any]


class Answer(Protocol):
    """An answer: its `message_start`, its event batches, and the Message they add up to.

    `start()` is known before the engine answers. Iterating gives the batches as they come, the
    first of them (possibly empty) as soon as the engine starts answering; `message()` is complete
    once the iteration has ended.
    """

    def start(self) -> list[Event]: ...

    def __aiter__(self) -> AsyncIterator[list[Event]]: ...

    def message(self) -> Message: ...


class Backend:
    """The engine behind this proxy: plans requests for it and generates their answers."""

    def __init__(
        self, settings: Settings, *, engine: Engine, metrics: Metrics, offload: Offload
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.offload = offload  # where translating a large request and counting run

    @property
    def catalog(self) -> Catalog:
        return self.engine.catalog

    async def plan(self, request: CountTokensRequest, *, stream: bool = False) -> Plan:
        """Resolve the model (404 when the engine lacks it) and translate `request`."""
        settings = self.settings
        upstream_model, digest, profile = await self._model(request.model)
        window = await self.catalog.window(upstream_model)
        upstream = await self.offload.run_if(
            content_blocks(request) > INLINE_BLOCKS,
            to_ollama_request,
            request,
            model=upstream_model,
            num_ctx=window,
            keep_alive=settings.keep_alive,
            think=wants_thinking(request) and "thinking" in profile.capabilities,
        )
        return Plan(request, upstream_model, digest, profile, upstream, stream, window)

    async def count(self, plan: Plan, *, max_tokens: int | None = None) -> Counted:
        """The engine's body and the prompt's count; given `max_tokens`, a prompt over
        `prompt_limit` is refused (400 "prompt is too long"). Done after the cache lookup: a
        hit needs neither. The event loop only waits (counting runs on the worker pool or at
        the engine)."""
        limit = None
        if max_tokens is not None:
            limit = prompt_limit(plan.window, self.settings.output_reserve, max_tokens)
        return await self.engine.count(plan, limit)

    def generate(self, counted: Counted) -> Generation:
        return Generation(counted, self)

    async def _model(self, requested: str) -> tuple[str, str, ModelProfile]:
        """The engine's model serving `requested`: its name, digest and profile."""
        settings, catalog = self.settings, self.catalog
        try:
            name = await route_model(
                requested,
                default=settings.default_model,
                aliases=settings.model_aliases,
                background=settings.background_model,
                available=catalog.has,
            )
            digest = await catalog.digest(name)
            if digest is None:
                raise NotFoundError(
                    f"model: '{name}' (requested as '{requested}') is not available at the "
                    f"engine; {catalog.missing(name)}."
                )
            return name, digest, await catalog.profile(name)
        except ProxyError as exc:
            self.metrics.upstream_errors[exc.error_type] += 1
            raise


class Generation:
    """The backend's answer to a plan as Anthropic event batches (an `Answer`).

    Iterate it once. Streamed, every engine chunk goes through as it comes; cancelling the
    task iterating it (client gone) leaves the upstream request's context, which closes the
    connection so the engine stops generating. Not streamed, the whole answer is one final chunk.
    At the end it records the request's tokens and calibrates the token estimate.
    """

    def __init__(self, counted: Counted, backend: Backend) -> None:
        self.counted = counted
        self.plan = counted.plan
        self.backend = backend
        self.machine = counted.machine()

    def start(self) -> list[Event]:
        return self.machine.start()

    def message(self) -> Message:
        return self.machine.message()

    async def __aiter__(self) -> AsyncIterator[list[Event]]:
        metrics = self.backend.metrics
        started = time.perf_counter()
        try:
            async for batch in self._upstream():
                yield batch
        except ContextOverflowError as exc:  # the engine counted more than the plan did
            error = PromptTooLongError(self.counted.tokens, self.counted.limit or 0)
            metrics.upstream_errors[error.error_type] += 1
            raise error from exc
        except ProxyError as exc:
            metrics.upstream_errors[exc.error_type] += 1
            raise
        machine, plan = self.machine, self.plan
        metrics.observe_tokens(plan.requested_model, machine.input_tokens, machine.output_tokens)
        metrics.observe_generation(machine.output_tokens, time.perf_counter() - started)
        metrics.recovered_tool_calls += machine.recovered_calls
        if machine.prompt_eval_count:
            self.backend.engine.observe(self.counted, machine.prompt_eval_count)

    async def _upstream(self) -> AsyncIterator[list[Event]]:
        machine, engine = self.machine, self.backend.engine
        if not self.plan.stream:
            yield machine.finish(await engine.answer(self.counted))
            return
        async with engine.stream(self.counted) as chunks:
            yield []  # the engine has started answering
            async for chunk in chunks:
                yield machine.finish(chunk) if chunk.get("done") else machine.feed(chunk)
                if machine.done:
                    return
        raise UpstreamError("The engine closed the stream before its final chunk.")
