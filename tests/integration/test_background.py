"""Claude Code's Haiku-class background calls go to a small model when Ollama has it, so they
never evict the main conversation's KV cache (the double's slot model, KvSlots, shows it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from devkit.background import MAIN, SMALL, TITLE
from ollama_double.server import KvSlots, OllamaDouble, Reply
from tests.conftest import API_KEY, LiveProxy

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude_code"
HEADERS = {"x-api-key": API_KEY}


def turns() -> tuple[dict[str, Any], dict[str, Any]]:
    """Claude Code's captured first turn and its next turn (the answer, a follow-up)."""
    first = {**json.loads((FIXTURES / "first_request.json").read_text()), "stream": False}
    follow_up = [
        {"role": "assistant", "content": "Hi! What should we work on?"},
        {"role": "user", "content": "List the files in this directory."},
    ]
    return first, {**first, "messages": [*first["messages"], *follow_up]}


def send(proxy: LiveProxy, body: dict[str, Any]) -> str:
    response = httpx.post(f"{proxy.url}/v1/messages", json=body, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["content"][0]["text"])


def test_background_ids_route_to_the_small_model_when_present(
    make_proxy: Any, double: OllamaDouble
) -> None:
    proxy = make_proxy()
    send(proxy, TITLE)
    assert double.chat_requests[-1]["model"] == MAIN  # not pulled: the main model answers
    double.add_model(SMALL)
    send(proxy, TITLE)
    assert double.chat_requests[-1]["model"] == SMALL
    send(proxy, {**TITLE, "model": "claude-sonnet-5"})
    assert double.chat_requests[-1]["model"] == MAIN
    listed = httpx.get(f"{proxy.url}/v1/models/claude-haiku-4-5", headers=HEADERS).json()
    assert listed["display_name"] == f"claude-haiku-4-5 → {SMALL}"
    for overrides in ({"background_model": ""}, {"model_aliases": {"haiku": MAIN}}):
        send(make_proxy(**overrides), TITLE)  # switched off, or an explicit alias wins
        assert double.chat_requests[-1]["model"] == MAIN


def session(proxy: LiveProxy, double: OllamaDouble) -> int:
    """Turn, background call, next turn; the tokens the next turn had to prefill."""
    first, second = turns()
    double.script(Reply("Hi! What should we work on?"), Reply("Session title"), Reply("ok"))
    for body in (first, TITLE, second):
        send(proxy, body)
    assert double.kv is not None
    model, prompt, prefilled = double.kv.log[-1]
    assert model == MAIN
    return prefilled


def test_main_model_keeps_its_slot(make_proxy: Any, double: OllamaDouble) -> None:
    """One slot per model, two models loaded (OLLAMA_NUM_PARALLEL=1, MAX_LOADED_MODELS=2): with
    the background call on the small model the next turn prefills only its new tokens; on the
    main model the call took the slot and the whole conversation is read again."""
    double.add_model(SMALL)
    double.kv = KvSlots(slots_per_model=1, max_loaded=2)
    kept = session(make_proxy(), double)
    double.kv = KvSlots(slots_per_model=1, max_loaded=2)
    evicted = session(make_proxy(background_model=""), double)
    assert kept < 100 < 10_000 < evicted
    assert double.kv.prefilled[SMALL] == 0  # the second session never used the small model
