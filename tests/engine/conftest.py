"""A real engine: llama.cpp's llama-server (built once, cached) with SmolLM2-135M, and
proxy_app in front of it with PROXY_ENGINE=openai.

SmolLM2 answers to two names: its own (a family proxy_app does not render: the engine's
template and /apply-template) and `qwen2.5-coder:7b` (ChatML like SmolLM2: proxy_app renders
Qwen2.5's published template itself). Both routes are counted by the engine's /tokenize.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devkit.llama_server import SMOLLM2, LocalLlama
from tests.conftest import QWEN_ALIAS, LiveProxy, llama_server, openai_engine

MODELS = (SMOLLM2, QWEN_ALIAS)


@pytest.fixture(scope="session")
def small_llama() -> Iterator[LocalLlama]:
    """A 512-token window: the guard and the answer cap, cheaply (the 32k one, `llama`, is
    tests/conftest.py's)."""
    yield from llama_server(context=512)


@pytest.fixture
def engine_proxy(make_proxy: Callable[..., LiveProxy]) -> Callable[..., LiveProxy]:
    """proxy_app in front of a llama-server (PROXY_ENGINE=openai)."""

    def make(server: LocalLlama, model: str = SMOLLM2, **overrides: Any) -> LiveProxy:
        return make_proxy(**openai_engine(server, model), **overrides)

    return make
