"""The context guard and count_tokens in real tokens, against the double (which counts the raw
prompt proxy_app sends with Qwen's vocabulary, as Ollama's runner tokenizes it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from ollama_double.server import OllamaDouble, Reply, raw_prompt_ids
from tests.conftest import API_KEY, LiveProxy

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude_code"
HEADERS = {"x-api-key": API_KEY}
FIRST_REQUEST_TOKENS = 11717  # tests/unit/test_tokens.py


def first_request() -> dict[str, Any]:
    body = json.loads((FIXTURES / "first_request.json").read_text())
    return {**body, "model": "qwen2.5-coder:7b", "stream": False}


def count_tokens(proxy: LiveProxy, body: dict[str, Any]) -> int:
    fields = {k: body[k] for k in ("model", "messages", "system", "tools")}
    response = httpx.post(f"{proxy.url}/v1/messages/count_tokens", json=fields, headers=HEADERS)
    assert response.status_code == 200, response.text
    tokens: int = response.json()["input_tokens"]
    return tokens


def test_count_tokens_is_what_ollama_counts(proxy: LiveProxy, double: OllamaDouble) -> None:
    body = first_request()
    assert count_tokens(proxy, body) == FIRST_REQUEST_TOKENS
    double.script(Reply("hi"))
    response = httpx.post(f"{proxy.url}/v1/messages", json=body, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    sent = double.chat_requests[0]
    assert sent["raw"] is True and len(raw_prompt_ids(sent["model"], sent["prompt"])) == (
        FIRST_REQUEST_TOKENS
    )
    assert response.json()["usage"]["input_tokens"] == FIRST_REQUEST_TOKENS
    metrics = httpx.get(f"{proxy.url}/metrics").text
    assert f'proxy_tokens_total{{direction="input"}} {FIRST_REQUEST_TOKENS}' in metrics


def test_guard_keeps_the_reserve_for_the_answer(make_proxy: Any, double: OllamaDouble) -> None:
    """num_ctx − PROXY_OUTPUT_RESERVE is the most a prompt may use: at it the request goes
    through; one token less room and it is the 400 that makes Claude Code compact."""
    body = first_request()  # max_tokens 128000: the whole reserve applies
    reserve = 4096
    fits = make_proxy(num_ctx=FIRST_REQUEST_TOKENS + reserve, output_reserve=reserve)
    double.script(Reply("fits"))
    response = httpx.post(f"{fits.url}/v1/messages", json=body, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    assert double.chat_requests[-1]["options"]["num_ctx"] == FIRST_REQUEST_TOKENS + reserve

    tight = make_proxy(num_ctx=FIRST_REQUEST_TOKENS + reserve - 1, output_reserve=reserve)
    response = httpx.post(f"{tight.url}/v1/messages", json=body, headers=HEADERS, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f"prompt is too long: {FIRST_REQUEST_TOKENS} tokens > {FIRST_REQUEST_TOKENS - 1} maximum"
    )
    assert len(double.chat_requests) == 1  # refused before Ollama saw it


def test_each_model_has_its_own_window_and_count(make_proxy: Any, double: OllamaDouble) -> None:
    """PROXY_MODEL_NUM_CTX gives the background model a smaller window: the same prompt passes
    on the main model and is refused for the Haiku id; count_tokens counts for the model asked
    (exact for Qwen, the estimate for a family whose vocabulary we do not ship)."""
    double.add_model("qwen2.5-coder:1.5b")
    double.add_model("llama3.2:3b")
    small = FIRST_REQUEST_TOKENS + 4096 - 1
    proxy = make_proxy(
        model_aliases={"haiku": "qwen2.5-coder:1.5b"},
        model_num_ctx={"qwen2.5-coder:1.5b": small},
    )
    body = first_request()
    double.script(Reply("main model"))
    response = httpx.post(f"{proxy.url}/v1/messages", json=body, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    assert double.chat_requests[-1]["options"]["num_ctx"] == 32768

    haiku = {**body, "model": "claude-haiku-4-5"}
    response = httpx.post(f"{proxy.url}/v1/messages", json=haiku, headers=HEADERS, timeout=30)
    assert response.status_code == 400
    assert f"{FIRST_REQUEST_TOKENS} tokens > {small - 4096} maximum" in response.text
    listed = httpx.get(f"{proxy.url}/v1/models/claude-haiku-4-5", headers=HEADERS).json()
    assert listed["max_input_tokens"] == small

    assert count_tokens(proxy, haiku) == FIRST_REQUEST_TOKENS
    assert count_tokens(proxy, {**body, "model": "llama3.2:3b"}) > 1.35 * FIRST_REQUEST_TOKENS


def test_qwen3_coder_is_counted_with_its_own_template(
    proxy: LiveProxy, double: OllamaDouble
) -> None:
    """/api/show names the built-in qwen3-coder renderer: count_tokens renders Qwen3-Coder's
    published template and counts with Qwen3's vocabulary, and says what Ollama (the double)
    reports for that prompt."""
    double.add_model("qwen3-coder:30b")
    body = {**first_request(), "model": "qwen3-coder:30b"}
    assert count_tokens(proxy, body) == 12153  # tests/unit/test_tokens.py
    double.script(Reply("hi"))
    response = httpx.post(f"{proxy.url}/v1/messages", json=body, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["input_tokens"] == 12153


def test_a_prompt_that_can_never_fit_is_refused_without_a_count(
    proxy: LiveProxy, double: OllamaDouble, monkeypatch: Any
) -> None:
    """4 MiB of user text is at least 32,768 tokens (128 bytes a token at most): 400 at once."""
    counted: list[str] = []
    monkeypatch.setattr(proxy.services.counter, "measure", lambda *a: counted.append("!"))
    body = {
        "model": "claude-sonnet-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "x" * (4 * 1024 * 1024)}],
    }
    response = httpx.post(f"{proxy.url}/v1/messages", json=body, headers=HEADERS, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "prompt is too long: 32768 tokens > 28672 maximum"
    )
    assert counted == [] and double.chat_requests == []
