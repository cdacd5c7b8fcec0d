"""The engines proxy_app fronts: one protocol, two implementations.

* `ollama.OllamaEngine`: Ollama's native API (`/api/chat`, or a raw `/api/generate` of the
  prompt proxy_app rendered; `/api/tags`, `/api/show`).
* `openai.OpenAIEngine`: an OpenAI-compatible server (llama.cpp's `llama-server`, tested;
  vLLM and SGLang speak the same `/v1/completions`): the prompt rendered by proxy_app (a
  known family) or by the engine's own template (llama.cpp's `/apply-template`), counted by
  the engine's `/tokenize`, sent as a raw completion.

An engine answers in Ollama's `/api/chat` chunk shape (`message.content`, `done`,
`done_reason`, `prompt_eval_count`, `eval_count`), which `streaming.AnthropicEventStream`
turns into Anthropic events; every failure comes out as a `proxy_app.errors.ProxyError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from proxy_app.engines.listing import Component
from proxy_app.engines.profile import ModelProfile

__all__ = ["Catalog", "Chunk", "Component", "Engine"]

if TYPE_CHECKING:
    from proxy_app.plan import Counted, Plan

Chunk = dict[str, Any]  # one answer chunk, in Ollama's /api/chat shape


class Catalog(Protocol):
    """The models an engine serves, by name."""

    async def refresh(self) -> dict[str, dict[str, Any]]:
        """Ask the engine now: {model name: its entry (`digest`, `modified_at`…)}."""
        ...

    async def digest(self, name: str) -> str | None:
        """What identifies the model's weights (the cache key's part), None if not served."""
        ...

    async def has(self, name: str) -> bool: ...

    def known(self, name: str) -> bool:
        """Whether the model was served at the last look (no call)."""
        ...

    async def profile(self, name: str) -> ModelProfile: ...

    async def window(self, name: str) -> int:
        """The model's context: prompt and answer together, in tokens."""
        ...

    def missing(self, name: str) -> str:
        """The sentence that tells a user how to make `name` available."""
        ...


class Engine(Protocol):
    @property
    def kind(self) -> str:
        """Its /health component's name: "ollama" or "engine"."""
        ...

    @property
    def catalog(self) -> Catalog: ...

    async def count(self, plan: Plan, limit: int | None) -> Counted:
        """The plan's body for this engine, its prompt counted; over `limit`, the 400."""
        ...

    def stream(self, counted: Counted) -> AbstractAsyncContextManager[AsyncIterator[Chunk]]:
        """Open a streamed answer (entered once the engine answered 200); its chunks, the
        final one with `done`; leaving closes the connection, so the engine stops."""
        ...

    async def answer(self, counted: Counted) -> Chunk:
        """A whole answer, as one final chunk."""
        ...

    def observe(self, counted: Counted, prompt_eval_count: int) -> None:
        """Learn from the prompt tokens the engine reported for a counted prompt."""
        ...

    async def check(self, model: str) -> dict[str, Component]:
        """/health's components: the engine (`kind`) and `model`, checked now."""
        ...

    async def aclose(self) -> None: ...
