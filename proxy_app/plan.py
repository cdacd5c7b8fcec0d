"""What one request asks of the engine (`Plan`), and that request counted and found to fit
(`Counted`): immutable values made by `generation.Backend` and the engine, before any answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from proxy_app.api.anthropic import CountTokensRequest
from proxy_app.api.nesting import MAX_DEPTH
from proxy_app.api.streaming import AnthropicEventStream
from proxy_app.engines.profile import ModelProfile
from proxy_app.errors import InvalidRequestError
from proxy_app.tokens import Measure
from proxy_app.translate import Upstream, deepest_field


@dataclass(frozen=True)
class Plan:
    """What one request asks of the engine: the model, its digest (for the cache key), its
    window and the translated request."""

    request: CountTokensRequest
    upstream_model: str
    digest: str
    profile: ModelProfile
    upstream: Upstream
    stream: bool
    window: int  # the model's context: prompt and answer together

    @property
    def requested_model(self) -> str:
        return self.request.model

    def encode(self, body: dict[str, Any]) -> bytes:
        """A body for the engine, streamed as the request is; JSON nested too deeply to encode
        is the client's 400, naming where."""
        try:
            return orjson.dumps({**body, "stream": self.stream})
        except orjson.JSONEncodeError as exc:
            where, depth = deepest_field(self.request)
            raise InvalidRequestError(
                f"{where}: nests {depth} levels deep; at most {MAX_DEPTH} fit in the engine's "
                "request"
            ) from exc


@dataclass(frozen=True)
class Counted:
    """A plan encoded as the engine's body, its prompt counted and, given a limit, found to
    fit (the engine's `count`). `path` is the engine's endpoint for it: with Ollama
    /api/generate when proxy_app rendered the prompt (the body is that prompt, raw), else
    /api/chat (Ollama renders it)."""

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


def prompt_limit(window: int, output_reserve: int, max_tokens: int) -> int:
    """The most prompt tokens a request may send: the model's window less room to answer.

    The window holds prompt and answer together and an answer that reaches its end is cut
    short; so PROXY_OUTPUT_RESERVE tokens (or max_tokens, if smaller) stay free for it, at most
    half the window (an engine may report a window smaller than the reserve).
    """
    return window - max(min(output_reserve, max_tokens, window // 2), 0)
