"""An OpenAI-compatible engine: llama.cpp's `llama-server` (tested live), vLLM and SGLang (the
same `/v1/completions` and `/v1/models`; read, not tested).

What the model reads is one string, counted and sent: proxy_app renders it for a family it
knows (by the model's name: qwen2.5*, qwen3-coder*), else the engine renders the model's own
template (llama.cpp's `/apply-template`; a template without tools gets them in text,
proxy_app.engines.chat_messages). The engine's `/tokenize` counts it, so count_tokens, the
guard and `usage.input_tokens` are the engine's own count; the string goes to
`/v1/completions` as a raw prompt with `cache_prompt` (llama.cpp keeps the slot's KV cache for
the common prefix). The answer's length is capped to what the window leaves, so a
`max_tokens` of 32,000 cannot run a small window to its end.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import orjson

from proxy_app.bound import refuse_unfittable
from proxy_app.config import Settings
from proxy_app.engines import Chunk, Component
from proxy_app.engines.chat_messages import chat_messages
from proxy_app.engines.http import EngineClient, upstream_error
from proxy_app.engines.listing import ModelListing
from proxy_app.engines.profile import ModelProfile
from proxy_app.errors import (
    InvalidRequestError,
    PromptTooLongError,
    ProxyError,
    UpstreamError,
)
from proxy_app.families import family_named, render
from proxy_app.offload import Offload
from proxy_app.plan import Counted, Plan
from proxy_app.tokens import Measure

log = logging.getLogger(__name__)

COMPLETIONS = "/v1/completions"
SAMPLING = ("temperature", "top_p", "top_k")  # options passed on as they are


class OpenAIClient(EngineClient):
    label = "The engine"
    unreachable_hint = "check that the engine (PROXY_ENGINE_URL) is running"

    @asynccontextmanager
    async def stream(self, body: bytes) -> AsyncIterator[AsyncIterator[Chunk]]:
        """A streamed /v1/completions; inside, its events as /api/chat chunks."""
        async with self.open_stream(COMPLETIONS, body) as response:
            yield _chunks(response)

    async def complete(self, body: bytes) -> Chunk:
        """A whole /v1/completions answer as one final chunk."""
        answer = await self.post_raw(COMPLETIONS, body)
        choice = _choice(answer)
        final = _final(choice.get("finish_reason"), answer.get("usage"))
        return {**final, "message": {"role": "assistant", "content": choice.get("text") or ""}}

    async def post_raw(self, path: str, body: bytes) -> dict[str, Any]:
        answer = await self._request("POST", path, body, None)
        if not isinstance(answer, dict):
            raise UpstreamError(f"The engine answered {path} with {str(answer)[:200]}")
        return answer


async def _chunks(response: httpx.Response) -> AsyncIterator[Chunk]:
    """Server-sent events of /v1/completions as /api/chat chunks: each text, then one final
    chunk (stop reason and usage) once `[DONE]` came; without it, no final chunk."""
    reason, usage = None, None
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            yield _final(reason, usage)
            return
        event = orjson.loads(data)
        if isinstance(event, dict) and "error" in event:
            error = event["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise upstream_error("The engine", 500, str(message), mid_stream=True)
        choice = _choice(event)
        reason = choice.get("finish_reason") or reason
        usage = event.get("usage") or usage
        if choice.get("text"):
            yield {"message": {"role": "assistant", "content": choice["text"]}, "done": False}


def _choice(event: dict[str, Any]) -> dict[str, Any]:
    choices = event.get("choices") or [{}]
    first = choices[0]
    return first if isinstance(first, dict) else {}


def _final(reason: Any, usage: Any) -> Chunk:
    usage = usage if isinstance(usage, dict) else {}
    return {
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "length" if reason == "length" else "stop",
        "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
        "eval_count": int(usage.get("completion_tokens") or 0),
    }


class OpenAICatalog(ModelListing):
    """The engine's /v1/models by id and alias (proxy_app.engines.listing), and what its /props
    says of the loaded model (llama.cpp: template, tool support, window per slot)."""

    def __init__(self, client: OpenAIClient, settings: Settings, ttl: float = 10.0) -> None:
        super().__init__(ttl)
        self._client = client
        self._settings = settings
        self._props: dict[str, Any] | None = None

    async def fetch(self) -> dict[str, dict[str, Any]]:
        listed = await self._client.get_json("/v1/models", timeout=5.0)
        models = {}
        for entry in listed.get("data") or []:
            # what identifies the weights; llama.cpp's `created` is the time of the call
            stable = {k: v for k, v in entry.items() if k != "created"}
            digest = hashlib.sha256(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS))
            named = {**entry, "digest": f"sha256:{digest.hexdigest()}"}
            for name in {str(entry.get("id")), *map(str, entry.get("aliases") or [])}:
                models[name] = named  # llama.cpp: --alias a,b answers to each
        return models

    async def profile(self, name: str) -> ModelProfile:  # noqa: ARG002 - one model per server
        props = await self._load_props()
        caps = props.get("chat_template_caps") or {}
        return ModelProfile(
            template=str(props.get("chat_template") or ""),
            capabilities=("tools",) if caps.get("supports_tools") else (),
        )

    async def window(self, name: str) -> int:
        """The engine's window (llama.cpp's tokens per slot from /props, vLLM's
        `max_model_len`), at most PROXY_NUM_CTX (PROXY_MODEL_NUM_CTX): a smaller setting wins."""
        setting = self._settings.num_ctx_for(name)
        props = await self._load_props()
        per_slot = (props.get("default_generation_settings") or {}).get("n_ctx")
        reported = per_slot or (self._models.get(name) or {}).get("max_model_len") or setting
        return min(int(reported), setting)

    def missing(self, name: str) -> str:
        served = ", ".join(sorted(self._models)) or "no model"
        return (
            f"the engine at {self._client.shown_url} serves {served}; set PROXY_DEFAULT_MODEL "
            f"or PROXY_MODEL_ALIASES to a model it serves (not {name!r})"
        )

    async def _load_props(self) -> dict[str, Any]:
        """llama.cpp's /props (asked once: a server loads one model); {} where there is none."""
        if self._props is None:
            try:
                props = await self._client.get_json("/props", timeout=5.0)
            except ProxyError as exc:
                if exc.status != 404:
                    raise
                props = {}
            self._props = props if isinstance(props, dict) else {}
        return self._props


class OpenAIEngine:
    kind = "engine"

    def __init__(self, settings: Settings, offload: Offload) -> None:
        self.client = OpenAIClient.for_settings(settings)
        self.catalog = OpenAICatalog(self.client, settings)
        self.offload = offload
        self._warned: set[str] = set()

    async def count(self, plan: Plan, limit: int | None) -> Counted:
        prompt = await self.offload.run(self._checked, plan, limit)
        if prompt is None:
            prompt = await self._applied(plan)
        tokens = await self.tokens(prompt)
        if limit is not None and tokens > limit:
            raise PromptTooLongError(tokens, limit)
        body = completion_body(plan, prompt, tokens)
        measure = Measure(tokens, tokens, True, b"", prompt)
        return Counted(plan, plan.encode(body), COMPLETIONS, measure, limit)

    def _checked(self, plan: Plan, limit: int | None) -> str | None:
        """On the worker pool: the checks that need no engine, then the prompt of a family
        proxy_app renders (None: the engine renders it, `_applied`)."""
        payload = plan.upstream.payload
        if limit is not None:  # a prompt whose size alone proves it too long is not sent
            refuse_unfittable(payload, limit)
        plan.encode(payload)  # refuses JSON nested too deeply
        messages, tools = payload.get("messages") or [], payload.get("tools") or []
        _refuse_images(messages)
        family = family_named(plan.upstream_model)
        return None if family is None else render(family, messages, tools)

    async def _applied(self, plan: Plan) -> str:
        """The prompt as the engine's own template renders it (llama.cpp's /apply-template)."""
        payload = plan.upstream.payload
        messages, tools = payload.get("messages") or [], payload.get("tools") or []
        has_tools = "tools" in plan.profile.capabilities
        body: dict[str, Any] = {
            "messages": chat_messages(messages, tools, template_has_tools=has_tools)
        }
        if tools and has_tools:
            body["tools"] = tools
        try:
            answer = await self.client.post_raw("/apply-template", orjson.dumps(body))
        except ProxyError as exc:
            if exc.status != 404:
                raise
            raise UpstreamError(
                f"The engine at {self.client.shown_url} cannot render {plan.upstream_model}'s "
                "template for proxy_app (it has no /apply-template, which llama.cpp's server "
                "has); serve a model of a family proxy_app renders (qwen2.5*, qwen3-coder*)."
            ) from exc
        return str(answer.get("prompt") or "")

    async def tokens(self, prompt: str) -> int:
        """The engine's count of the prompt, as its completion tokenizes it. llama.cpp's
        /tokenize reads `content` and `add_special`; vLLM's `prompt` and `add_special_tokens`
        (read, not tested); each ignores the other's."""
        body = orjson.dumps(
            {"content": prompt, "add_special": True, "prompt": prompt, "add_special_tokens": True}
        )
        answer = await self.client.post_raw("/tokenize", body)
        return len(answer.get("tokens") or [])

    def stream(self, counted: Counted) -> AbstractAsyncContextManager[AsyncIterator[Chunk]]:
        return self.client.stream(counted.body)

    async def answer(self, counted: Counted) -> Chunk:
        return await self.client.complete(counted.body)

    def observe(self, counted: Counted, prompt_eval_count: int) -> None:
        model = counted.plan.upstream_model
        if prompt_eval_count != counted.tokens and model not in self._warned:
            self._warned.add(model)
            log.warning(
                "the engine's /tokenize counted %d tokens for %s but its completion %d",
                counted.tokens,
                model,
                prompt_eval_count,
            )

    async def check(self, model: str) -> dict[str, Component]:
        """The engine's /health (llama.cpp: 503 while loading) and whether it serves `model`."""

        async def health() -> dict[str, Any]:
            await self.client.get_json("/health", timeout=3.0)
            return {"url": self.client.shown_url}

        return await self.catalog.check(self.kind, health, model, self.catalog.missing)

    async def aclose(self) -> None:
        await self.client.aclose()


def completion_body(plan: Plan, prompt: str, tokens: int) -> dict[str, Any]:
    """/v1/completions for the rendered prompt: the answer capped to what the window leaves."""
    options = plan.upstream.payload.get("options") or {}
    body: dict[str, Any] = {"model": plan.upstream_model, "prompt": prompt}
    if "num_predict" in options:
        body["max_tokens"] = max(min(int(options["num_predict"]), plan.window - tokens), 1)
    body.update({key: options[key] for key in SAMPLING if key in options})
    if plan.stream:
        body["stream_options"] = {"include_usage": True}
    body["cache_prompt"] = True  # llama.cpp: reuse the slot's KV cache for the common prefix
    return body


def _refuse_images(messages: list[dict[str, Any]]) -> None:
    for i, message in enumerate(messages):
        if message.get("images"):
            raise InvalidRequestError(
                f"messages.{i}: images are not supported with PROXY_ENGINE=openai (proxy_app "
                "sends the engine a text prompt); use the Ollama engine for a vision model."
            )
