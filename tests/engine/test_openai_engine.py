"""proxy_app in front of a real engine (PROXY_ENGINE=openai): llama.cpp's llama-server with
SmolLM2-135M, real tokens, real streaming, a real KV cache. The model is tiny: these tests
assert structure and the engine's own counters, never its wording."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from devkit.llama_server import SMOLLM2, LocalLlama
from devkit.ports import free_port
from devkit.redis_tls import RedisTLSServer
from tests.conftest import API_KEY, LiveProxy
from tests.engine.conftest import MODELS, QWEN_ALIAS

CAPTURED = Path(__file__).parents[1] / "fixtures" / "claude_code"
HI = [{"role": "user", "content": "say hi"}]
BASH = {
    "name": "Bash",
    "description": "Run a shell command.",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
}


def sdk(proxy: LiveProxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=API_KEY, max_retries=0, timeout=600)


def engine_count(server: LocalLlama, send: Any) -> tuple[Any, int]:
    """`send()`'s result, and the prompt tokens the engine itself saw for it (evaluated plus
    taken from its KV cache, from its /metrics)."""
    evaluated, cached = server.prompt_seen()
    result = send()
    evaluated_after, cached_after = server.prompt_seen()
    return result, (evaluated_after - evaluated) + (cached_after - cached)


@pytest.mark.parametrize("model", MODELS)
def test_a_plain_answer_is_counted_as_the_engine_counts(
    engine_proxy: Any, llama: LocalLlama, model: str
) -> None:
    proxy = engine_proxy(llama, model)
    client = sdk(proxy)
    counted = client.messages.count_tokens(model="claude-sonnet-4-5", messages=HI, tools=[BASH])
    message, seen = engine_count(
        llama,
        lambda: client.messages.create(
            model="claude-sonnet-4-5", max_tokens=24, messages=HI, tools=[BASH]
        ),
    )
    assert message.usage.input_tokens == counted.input_tokens == seen
    assert 1 <= message.usage.output_tokens <= 24
    assert message.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert message.content, "the model wrote nothing"


def test_a_streamed_answer_arrives_in_events(engine_proxy: Any, llama: LocalLlama) -> None:
    client = sdk(engine_proxy(llama))
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=24, messages=HI) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds and "message_delta" in kinds
    text = "".join(block.text for block in final.content if block.type == "text")
    assert text.strip(), "no text was streamed"
    assert 1 <= final.usage.output_tokens <= 24


def test_a_client_that_leaves_stops_the_engine(engine_proxy: Any, llama: LocalLlama) -> None:
    proxy = engine_proxy(llama)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4000,
        "stream": True,
        "messages": [{"role": "user", "content": "Write a very long story about a lighthouse."}],
    }
    before = llama.counters()["tokens_predicted_total"]
    headers = {"x-api-key": API_KEY}
    with httpx.stream("POST", f"{proxy.url}/v1/messages", json=body, headers=headers) as response:
        for line in response.iter_lines():
            if '"text_delta"' in line:
                break  # the first words: the client leaves here
    deadline = time.monotonic() + 30
    while llama.busy() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not llama.busy(), "the engine kept generating after the client left"
    stopped_at = llama.counters()["tokens_predicted_total"]
    time.sleep(1)
    assert llama.counters()["tokens_predicted_total"] == stopped_at
    assert stopped_at - before < 4000


def counted_and_seen(proxy: LiveProxy, llama: LocalLlama, name: str) -> tuple[int, int, int]:
    """A captured Claude Code request: proxy_app's count_tokens, the `usage.input_tokens` of
    its answer (one token), and the engine's own count of the prompt it received."""
    body = json.loads((CAPTURED / f"{name}.json").read_text())
    headers = {"x-api-key": API_KEY}
    counted = httpx.post(
        f"{proxy.url}/v1/messages/count_tokens", json=body, headers=headers, timeout=60
    ).json()["input_tokens"]
    body = {**body, "stream": False, "max_tokens": 1}
    answer, seen = engine_count(
        llama,
        lambda: httpx.post(f"{proxy.url}/v1/messages", json=body, headers=headers, timeout=600),
    )
    assert answer.status_code == 200, answer.text
    return counted, answer.json()["usage"]["input_tokens"], seen


@pytest.mark.parametrize(
    "name",
    [
        "first_request",
        "first_request_qwen",
        "tool_result_request",
        "after_compaction_request",
        "compaction_request",
    ],
)
def test_captured_claude_code_requests_count_as_the_engine_counts(
    engine_proxy: Any, llama: LocalLlama, name: str
) -> None:
    """Claude Code's own requests (~12k tokens each; every capture that fits the window: the
    count_tokens capture, ~40k tokens of a Read, does not), on the route proxy_app renders."""
    counted, used, seen = counted_and_seen(engine_proxy(llama, QWEN_ALIAS), llama, name)
    assert counted == used == seen


def test_the_engine_renders_a_model_proxy_app_does_not_know(
    engine_proxy: Any, llama: LocalLlama
) -> None:
    """SmolLM2's template (no tools section) via the engine; Claude Code's tools still reach
    the model, in the system turn (the documented fallback)."""
    proxy = engine_proxy(llama, SMOLLM2)
    counted, used, seen = counted_and_seen(proxy, llama, "first_request")
    assert counted == used == seen
    body = json.loads((CAPTURED / "first_request.json").read_text())
    without = httpx.post(
        f"{proxy.url}/v1/messages/count_tokens",
        json={key: value for key, value in body.items() if key != "tools"},
        headers={"x-api-key": API_KEY},
        timeout=60,
    ).json()["input_tokens"]
    assert counted - without > 4000  # Claude Code's 12 tools reached the model's prompt


def _prompt_of(proxy: LiveProxy, tokens: int) -> list[dict[str, str]]:
    """A conversation whose prompt counts exactly `tokens` (found with count_tokens)."""

    def count(words: int) -> int:
        messages = [{"role": "user", "content": "a" + " a" * words}]
        body = {"model": "claude-sonnet-4-5", "messages": messages}
        answer = httpx.post(
            f"{proxy.url}/v1/messages/count_tokens", json=body, headers={"x-api-key": API_KEY}
        )
        return int(answer.json()["input_tokens"])

    base = count(0)
    words = tokens - base  # " a" is one token
    assert count(words) == tokens
    return [{"role": "user", "content": "a" + " a" * words}]


def test_the_guard_refuses_one_token_past_the_window(
    engine_proxy: Any, small_llama: LocalLlama
) -> None:
    proxy = engine_proxy(small_llama)
    limit = 512 - 16  # the window less max_tokens (under PROXY_OUTPUT_RESERVE)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 16}
    headers = {"x-api-key": API_KEY}
    over = httpx.post(
        f"{proxy.url}/v1/messages",
        json={**body, "messages": _prompt_of(proxy, limit + 1)},
        headers=headers,
    )
    assert over.status_code == 400
    assert (
        over.json()["error"]["message"]
        == f"prompt is too long: {limit + 1} tokens > {limit} maximum"
    )
    fits = httpx.post(
        f"{proxy.url}/v1/messages",
        json={**body, "messages": _prompt_of(proxy, limit)},
        headers=headers,
        timeout=120,
    )
    assert fits.status_code == 200, fits.text
    assert fits.json()["usage"]["input_tokens"] == limit


def test_an_answer_is_capped_to_what_the_window_leaves(
    engine_proxy: Any, small_llama: LocalLlama
) -> None:
    """Claude Code asks for 32,000 tokens; a 512-token window holds far fewer."""
    proxy = engine_proxy(small_llama)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "messages": [{"role": "user", "content": "Count from 1 to 1000, one number a line."}],
    }
    answer = httpx.post(
        f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": API_KEY}, timeout=300
    )
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    assert usage["input_tokens"] + usage["output_tokens"] <= 512


def test_identical_requests_in_flight_share_one_generation(
    engine_proxy: Any, llama: LocalLlama, redis_tls_server_fn: RedisTLSServer
) -> None:
    server = redis_tls_server_fn
    proxy = engine_proxy(llama, redis_url=server.url, redis_ca_file=str(server.certs.ca_file))
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 48,
        "temperature": 0,
        "messages": [{"role": "user", "content": f"Describe the sea. ({time.time()})"}],
    }
    headers = {"x-api-key": API_KEY}

    def four_at_once() -> list[httpx.Response]:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            calls = [
                pool.submit(httpx.post, f"{proxy.url}/v1/messages", json=body, headers=headers)
                for _ in range(4)
            ]
            return [call.result() for call in calls]

    predicted = llama.counters()["tokens_predicted_total"]
    answers, seen = engine_count(llama, four_at_once)
    assert [a.status_code for a in answers] == [200] * 4
    assert len({json.dumps(a.json()["content"]) for a in answers}) == 1
    one = answers[0].json()["usage"]
    assert seen == one["input_tokens"]  # one prompt reached the engine
    assert llama.counters()["tokens_predicted_total"] - predicted == one["output_tokens"]


def test_an_unreachable_engine_is_a_529_naming_the_setting(make_proxy: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = make_proxy(engine="openai", engine_url=dead, default_model=SMOLLM2)
    answer = httpx.post(
        f"{proxy.url}/v1/messages",
        json={"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": HI},
        headers={"x-api-key": API_KEY},
    )
    assert answer.status_code == 529
    error = answer.json()["error"]
    assert error["type"] == "overloaded_error" and "PROXY_ENGINE_URL" in error["message"]


def test_an_identical_request_is_answered_from_the_cache(
    engine_proxy: Any, llama: LocalLlama, redis_tls_server_fn: RedisTLSServer
) -> None:
    server = redis_tls_server_fn
    proxy = engine_proxy(llama, redis_url=server.url, redis_ca_file=str(server.certs.ca_file))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 12, "temperature": 0, "messages": HI}
    headers = {"x-api-key": API_KEY}
    first, seen_first = engine_count(
        llama, lambda: httpx.post(f"{proxy.url}/v1/messages", json=body, headers=headers)
    )
    second, seen_second = engine_count(
        llama, lambda: httpx.post(f"{proxy.url}/v1/messages", json=body, headers=headers)
    )
    assert first.headers["x-cache"] == "MISS" and seen_first > 0
    assert second.headers["x-cache"] == "HIT" and seen_second == 0
    assert second.json()["content"] == first.json()["content"]


def test_health_reports_the_engine_and_its_model(engine_proxy: Any, llama: LocalLlama) -> None:
    proxy = engine_proxy(llama)
    health = httpx.get(f"{proxy.url}/health").json()
    assert health["status"] == "healthy"
    assert health["components"]["engine"]["status"] == "ok"
    assert health["components"]["model"] == {
        "status": "ok",
        "name": SMOLLM2,
        "digest": health["components"]["model"]["digest"],
    }
    models = httpx.get(f"{proxy.url}/v1/models", headers={"x-api-key": API_KEY}).json()
    assert {entry["id"] for entry in models["data"]} >= set(MODELS)
    assert all(entry["max_input_tokens"] == 32768 for entry in models["data"])


def test_a_model_the_engine_does_not_serve_is_a_404_naming_the_fix(
    engine_proxy: Any, llama: LocalLlama
) -> None:
    proxy = engine_proxy(llama, "qwen3-coder:30b")
    answer = httpx.post(
        f"{proxy.url}/v1/messages",
        json={"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": HI},
        headers={"x-api-key": API_KEY},
    )
    assert answer.status_code == 404
    message = answer.json()["error"]["message"]
    assert SMOLLM2 in message and "PROXY_DEFAULT_MODEL" in message


@pytest.mark.parametrize("model", MODELS)
def test_the_next_turn_reuses_the_engines_kv_cache(
    engine_proxy: Any, llama: LocalLlama, model: str
) -> None:
    """Turn 2's prompt begins with turn 1's: the engine takes all of it from its KV cache and
    evaluates only what is new (the answer as re-rendered, the next user turn)."""
    client = sdk(engine_proxy(llama, model))
    turn = {"model": "claude-sonnet-4-5", "max_tokens": 24, "system": "Be brief."}
    asked = [{"role": "user", "content": "Name three colours."}]
    first = client.messages.create(**turn, messages=asked)
    said = "".join(block.text for block in first.content if block.type == "text")
    follow_up = [
        *asked,
        {"role": "assistant", "content": said},
        {"role": "user", "content": "And three animals."},
    ]
    evaluated, cached = llama.prompt_seen()
    second = client.messages.create(**turn, messages=follow_up)
    evaluated_after, cached_after = llama.prompt_seen()
    assert cached_after - cached >= first.usage.input_tokens
    new = second.usage.input_tokens - first.usage.input_tokens
    assert evaluated_after - evaluated <= new
