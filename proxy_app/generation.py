"""One generation: the plan of the upstream call, then Ollama's answer as Anthropic events.

`Backend.plan` and `Backend.count` do every check that can fail before a response starts
(model present; body encodable, prompt fits), so those failures are HTTP errors rather than SSE
error events; the `Plan` and `Counted` they return are immutable, and a `Generation` can only
be made from a `Counted`. `Generation` is the answer as an async iterator
of Anthropic event batches, one per upstream step, that a non-streaming response drains and a
streaming one frames (proxy_app.sse).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from proxy_app.aliases import route_model
from proxy_app.anthropic import CountTokensRequest, content_blocks
from proxy_app.bound import refuse_unfittable
from proxy_app.config import Settings
from proxy_app.errors import (
    ContextOverflowError,
    InvalidRequestError,
    NotFoundError,
    PromptTooLongError,
    ProxyError,
    UpstreamError,
)
from proxy_app.metrics import Metrics
from proxy_app.nesting import MAX_DEPTH
from proxy_app.offload import INLINE_BLOCKS, Offload
from proxy_app.ollama import CHAT, COMPLETION, ModelCatalog, ModelProfile, OllamaClient
from proxy_app.streaming import AnthropicEventStream, Event
from proxy_app.tokens import Measure, TokenCounter
from proxy_app.translate import Upstream, deepest_field, to_ollama_request, wants_thinking

Message = dict[str, Any]


class Answer(Protocol):
    """An answer: its `message_start`, its event batches, and the Message they add up to.

    `start()` is known before Ollama answers. Iterating gives the batches as they come, the
    first of them (possibly empty) as soon as Ollama starts answering; `message()` is complete
    once the iteration has ended.
    """

    def start(self) -> list[Event]: ...

    def __aiter__(self) -> AsyncIterator[list[Event]]: ...

    def message(self) -> Message: ...


@dataclass(frozen=True)
class Plan:
    """What one request asks of the backend: the model, its digest (for the cache key) and the
    translated request."""

    request: CountTokensRequest
    upstream_model: str
    digest: str
    profile: ModelProfile
    upstream: Upstream
    stream: bool

    @property
    def requested_model(self) -> str:
        return self.request.model


@dataclass(frozen=True)
class Counted:
    """A plan encoded as its upstream body, its prompt counted and, given a limit, found to
    fit (`Backend.count`). `path` is /api/generate when proxy_app rendered the prompt (the
    body is that prompt, raw), else /api/chat (Ollama renders it)."""

    plan: Plan
    body: bytes
    path: str
    measure: Measure
    limit: int | None  # the most prompt tokens allowed (None: not guarded, count_tokens)

    @property
    def tokens(self) -> int:
        return self.measure.tokens

    def machine(self) -> AnthropicEventStream:
        """A fresh state machine for this prompt's answer."""
        upstream = self.plan.upstream
        return AnthropicEventStream(
            model=self.plan.requested_model,
            input_tokens=self.tokens,
            tool_names=upstream.tool_names,
            tool_schemas={  # input_schema by name: recovered XML values are typed by it
                t["function"]["name"]: t["function"].get("parameters") or {}
                for t in upstream.payload.get("tools") or []
            },
            stop_sequences=upstream.stop_sequences,
        )


def prompt_limit(settings: Settings, model: str, max_tokens: int) -> int:
    """The most prompt tokens a request to `model` may send: its window less room to answer.

    `num_ctx` holds prompt and answer together and, with `shift: false`, an answer that
    reaches the end is cut short; so PROXY_OUTPUT_RESERVE tokens (or max_tokens, if smaller)
    stay free for it.
    """
    return settings.num_ctx_for(model) - max(min(settings.output_reserve, max_tokens), 0)


class Backend:
    """Ollama as this proxy's backend: plans requests for it and generates their answers."""

    def __init__(
        self,
        settings: Settings,
        *,
        ollama: OllamaClient,
        catalog: ModelCatalog,
        counter: TokenCounter,
        metrics: Metrics,
        offload: Offload,
    ) -> None:
        self.settings = settings
        self.ollama = ollama
        self.catalog = catalog
        self.counter = counter
        self.metrics = metrics
        self.offload = offload  # where translating a large request and counting run

    async def plan(self, request: CountTokensRequest, *, stream: bool = False) -> Plan:
        """Resolve the model (404 when Ollama lacks it) and translate `request`."""
        settings = self.settings
        upstream_model, digest, profile = await self._model(request.model)
        upstream = await self.offload.run_if(
            content_blocks(request) > INLINE_BLOCKS,
            to_ollama_request,
            request,
            model=upstream_model,
            num_ctx=settings.num_ctx_for(upstream_model),
            keep_alive=settings.keep_alive,
            think=wants_thinking(request) and "thinking" in profile.capabilities,
        )
        return Plan(request, upstream_model, digest, profile, upstream, stream)

    async def count(self, plan: Plan, *, max_tokens: int | None = None) -> Counted:
        """Encode the plan's body and count its prompt; given `max_tokens`, refuse a prompt over
        `prompt_limit` (400 "prompt is too long"). Done after the cache lookup: a hit needs
        neither. Runs on the worker pool (proxy_app.offload), the event loop only waits."""
        limit = None
        if max_tokens is not None:
            limit = prompt_limit(self.settings, plan.upstream_model, max_tokens)
        return await self.offload.run(self._count, plan, limit)

    def _count(self, plan: Plan, limit: int | None) -> Counted:
        if limit is not None:  # a prompt whose size alone proves it too long is not counted
            refuse_unfittable(plan.upstream.payload, limit)
        chat_body = _encode(plan, plan.upstream.payload)  # refuses JSON nested too deeply
        model = plan.upstream_model
        measure = self.counter.measure(model, plan.profile, plan.upstream.payload)
        if limit is not None and measure.tokens > limit:
            raise PromptTooLongError(measure.tokens, limit)
        if measure.prompt is None:
            return Counted(plan, chat_body, CHAT, measure, limit)
        body = completion_body(plan.upstream.payload, measure.prompt)
        return Counted(plan, _encode(plan, body), COMPLETION, measure, limit)

    def generate(self, counted: Counted) -> Generation:
        return Generation(counted, self)

    async def _model(self, requested: str) -> tuple[str, str, ModelProfile]:
        """The Ollama model serving `requested`: its name, digest and profile."""
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
                    f"model: '{name}' (requested as '{requested}') is not available in "
                    f"Ollama; pull it with `ollama pull {name}`."
                )
            return name, digest, await catalog.profile(name)
        except ProxyError as exc:
            self.metrics.upstream_errors[exc.error_type] += 1
            raise


def completion_body(payload: dict[str, Any], prompt: str) -> dict[str, Any]:
    """The raw /api/generate body for an /api/chat body whose prompt proxy_app rendered: the
    same model, options and limits; no template, no SYSTEM, no `context` (raw mode)."""
    body = {key: payload[key] for key in RAW_KEYS if key in payload}
    images = [
        image for message in payload.get("messages") or [] for image in message.get("images") or []
    ]
    if images:
        body["images"] = images
    return {**body, "prompt": prompt, "raw": True}


# What an /api/chat body and a raw /api/generate body share (Ollama's GenerateRequest fields).
RAW_KEYS = ("model", "truncate", "shift", "keep_alive", "options")


def _encode(plan: Plan, body: dict[str, Any]) -> bytes:
    """The upstream body; JSON nested too deeply for it is the client's 400."""
    try:
        return orjson.dumps({**body, "stream": plan.stream})
    except orjson.JSONEncodeError as exc:
        where, depth = deepest_field(plan.request)
        raise InvalidRequestError(
            f"{where}: nests {depth} levels deep; at most {MAX_DEPTH} fit in Ollama's request"
        ) from exc


class Generation:
    """The backend's answer to a plan as Anthropic event batches (an `Answer`).

    Iterate it once. Streamed, every Ollama chunk goes through as it comes; cancelling the
    task iterating it (client gone) leaves the upstream request's context, which closes the
    connection so Ollama stops generating. Not streamed, the whole answer is one final chunk.
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
        except ContextOverflowError as exc:  # Ollama counted more than the plan did
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
            self.backend.counter.observe(
                plan.upstream_model, self.counted.measure, machine.prompt_eval_count
            )

    async def _upstream(self) -> AsyncIterator[list[Event]]:
        machine, ollama = self.machine, self.backend.ollama
        if not self.plan.stream:
            yield machine.finish(await ollama.chat(self.counted.body, self.counted.path))
            return
        async with ollama.chat_stream(self.counted.body, self.counted.path) as chunks:
            yield []  # Ollama has started answering
            async for chunk in chunks:
                yield machine.finish(chunk) if chunk.get("done") else machine.feed(chunk)
                if machine.done:
                    return
        raise UpstreamError("Ollama closed the stream before its final chunk.")
