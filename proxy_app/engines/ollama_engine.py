"""Ollama as proxy_app's engine: its client and catalog (engines/ollama.py), the prompt
counted here (proxy_app.tokens) and, for a family proxy_app renders, sent as a raw
/api/generate of that very string; else the /api/chat body, which Ollama renders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from proxy_app.bound import refuse_unfittable
from proxy_app.config import Settings
from proxy_app.engines import Chunk, Component
from proxy_app.engines.ollama import CHAT, COMPLETION, ModelCatalog, OllamaClient
from proxy_app.errors import PromptTooLongError
from proxy_app.offload import Offload
from proxy_app.plan import Counted, Plan
from proxy_app.tokens import TokenCounter

# What an /api/chat body and a raw /api/generate body share (Ollama's GenerateRequest fields).
RAW_KEYS = ("model", "truncate", "shift", "keep_alive", "options")


class OllamaEngine:
    kind = "ollama"

    def __init__(self, settings: Settings, offload: Offload) -> None:
        self.client = OllamaClient.for_settings(settings)
        self.catalog = ModelCatalog(self.client, windows=settings.num_ctx_for)
        self.counter = TokenCounter()
        self.offload = offload  # counting runs on the worker pool, the event loop only waits

    async def count(self, plan: Plan, limit: int | None) -> Counted:
        return await self.offload.run(self._count, plan, limit)

    def _count(self, plan: Plan, limit: int | None) -> Counted:
        if limit is not None:  # a prompt whose size alone proves it too long is not counted
            refuse_unfittable(plan.upstream.payload, limit)
        chat_body = plan.encode(plan.upstream.payload)  # refuses JSON nested too deeply
        measure = self.counter.measure(plan.upstream_model, plan.profile, plan.upstream.payload)
        if limit is not None and measure.tokens > limit:
            raise PromptTooLongError(measure.tokens, limit)
        if measure.prompt is None:
            return Counted(plan, chat_body, CHAT, measure, limit)
        body = completion_body(plan.upstream.payload, measure.prompt)
        return Counted(plan, plan.encode(body), COMPLETION, measure, limit)

    def stream(self, counted: Counted) -> AbstractAsyncContextManager[AsyncIterator[Chunk]]:
        return self.client.chat_stream(counted.body, counted.path)

    async def answer(self, counted: Counted) -> Chunk:
        return await self.client.chat(counted.body, counted.path)

    def observe(self, counted: Counted, prompt_eval_count: int) -> None:
        self.counter.observe(counted.plan.upstream_model, counted.measure, prompt_eval_count)

    async def check(self, model: str) -> dict[str, Component]:
        """Ollama's version and whether it has `model` (two calls)."""

        async def version() -> dict[str, Any]:
            answer = await self.client.get_json("/api/version", timeout=3.0)
            return {"version": answer.get("version", "")}

        return await self.catalog.check(self.kind, version, model, _not_pulled)

    async def aclose(self) -> None:
        await self.client.aclose()


def _not_pulled(model: str) -> str:
    return f"model {model} is not pulled; run `ollama pull {model}`"


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
