"""One generation: plan the upstream call, relay Ollama's stream through the state machine.

`plan` does every check that can fail before a response starts (model present, prompt fits),
so those failures are HTTP errors rather than SSE error events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from proxy_app.aliases import route_model
from proxy_app.anthropic import CountTokensRequest
from proxy_app.config import Settings
from proxy_app.errors import (
    InvalidRequestError,
    NotFoundError,
    PromptTooLongError,
    UpstreamError,
)
from proxy_app.nesting import MAX_DEPTH
from proxy_app.ollama import ModelCatalog, ModelProfile, OllamaClient
from proxy_app.streaming import AnthropicEventStream, Event
from proxy_app.tokens import Measure, TokenCounter
from proxy_app.translate import Upstream, deepest_field, to_ollama_request, wants_thinking


@dataclass
class Plan:
    requested_model: str
    upstream_model: str
    digest: str
    upstream: Upstream
    profile: ModelProfile
    counted: Measure | None = None
    limit: int = 0
    body: bytes = b""  # the /api/chat body, written once by `encode`

    @property
    def estimate(self) -> int:
        return self.counted.tokens if self.counted else 0

    def measure(self, counter: TokenCounter, *, limit: int | None = None) -> int:
        """Count the prompt's tokens; given `limit`, refuse a prompt over it."""
        self.counted = counter.measure(self.upstream_model, self.profile, self.upstream.payload)
        self.limit = limit or 0
        if limit is not None and self.estimate > limit:
            raise PromptTooLongError(self.estimate, limit)
        return self.estimate

    def encode(self, request: CountTokensRequest, *, stream: bool) -> bytes:
        """Write the /api/chat body once; JSON nested too deeply for it is the client's 400."""
        try:
            self.body = orjson.dumps({**self.upstream.payload, "stream": stream})
        except orjson.JSONEncodeError as exc:
            where, depth = deepest_field(request)
            raise InvalidRequestError(
                f"{where}: nests {depth} levels deep; at most {MAX_DEPTH} fit in Ollama's request"
            ) from exc
        return self.body

    def machine(self) -> AnthropicEventStream:
        return AnthropicEventStream(
            model=self.requested_model,
            input_tokens=self.estimate,
            tool_names=self.upstream.tool_names,
            tool_schemas={  # input_schema by name: recovered XML values are typed by it
                t["function"]["name"]: t["function"].get("parameters") or {}
                for t in self.upstream.payload.get("tools") or []
            },
            stop_sequences=self.upstream.stop_sequences,
        )


def prompt_limit(settings: Settings, model: str, max_tokens: int) -> int:
    """The most prompt tokens a request to `model` may send: its window less room to answer.

    `num_ctx` holds prompt and answer together and, with `shift: false`, an answer that
    reaches the end is cut short; so PROXY_OUTPUT_RESERVE tokens (or max_tokens, if smaller)
    stay free for it.
    """
    return settings.num_ctx_for(model) - max(min(settings.output_reserve, max_tokens), 0)


async def plan(
    request: CountTokensRequest,
    *,
    settings: Settings,
    catalog: ModelCatalog,
) -> Plan:
    """Resolve the model (404 when Ollama lacks it) and translate the request."""
    upstream_model = await route_model(
        request.model,
        default=settings.default_model,
        aliases=settings.model_aliases,
        background=settings.background_model,
        available=catalog.has,
    )
    digest = await catalog.digest(upstream_model)
    if digest is None:
        raise NotFoundError(
            f"model: '{upstream_model}' (requested as '{request.model}') is not available in "
            f"Ollama; pull it with `ollama pull {upstream_model}`."
        )
    profile = await catalog.profile(upstream_model)
    think = wants_thinking(request) and "thinking" in profile.capabilities
    upstream = to_ollama_request(
        request,
        model=upstream_model,
        num_ctx=settings.num_ctx_for(upstream_model),
        keep_alive=settings.keep_alive,
        think=think,
    )
    return Plan(request.model, upstream_model, digest, upstream, profile)


async def relay(
    ollama: OllamaClient,
    plan: Plan,
    machine: AnthropicEventStream,
    emit: Callable[[list[Event]], None],
    *,
    stream: bool = True,
) -> None:
    """Feed Ollama's answer through the machine, handing each step's events to `emit`.

    With `stream` Ollama streams and every chunk goes through as it comes (`emit([])` first,
    when Ollama has started answering); run it in its own
    task: cancelling the task (client gone) exits the upstream request's context, which closes
    the connection so Ollama stops generating. Without, the whole answer is one final chunk.
    """
    try:
        if not stream:
            emit(machine.finish(await ollama.chat(plan.body)))
            return
        async for chunk in ollama.chat_stream(plan.body, on_open=lambda: emit([])):
            emit(machine.finish(chunk) if chunk.get("done") else machine.feed(chunk))
            if machine.done:
                return
    except PromptTooLongError as exc:
        raise PromptTooLongError(plan.estimate, plan.limit) from exc
    raise UpstreamError("Ollama closed the stream before its final chunk.")
