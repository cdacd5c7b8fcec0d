"""Prompt token counts: exact for Qwen (golden counts of the captured Claude Code requests),
estimated and calibrated both ways for other families."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxy_app import tokens, vocab
from proxy_app.api.anthropic import CountTokensRequest, MessagesRequest
from proxy_app.engines.chat_template import QWEN25_CODER
from proxy_app.engines.profile import ModelProfile
from proxy_app.families import render
from proxy_app.families.qwen3coder import QWEN3_CODER as QWEN3_CODER_FAMILY
from proxy_app.families.qwen25 import QWEN25, Qwen25
from proxy_app.tokens import TokenCounter, raw_estimate
from proxy_app.translate import to_ollama_request

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude_code"
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
QWEN_CODER = ModelProfile("qwen2", QWEN25_CODER.source(), QWEN_SYSTEM, ("completion", "tools"))
OTHER = ModelProfile("llama", "{{ .Prompt }}", "", ("completion",))
MODEL = "qwen2.5-coder:7b"
QWEN3_CODER = ModelProfile("qwen3moe", "{{ .Prompt }}", "", ("completion", "tools"), "qwen3-coder")

# Qwen's vocabulary over the prompt of Qwen2.5's published template for each capture (see
# test_families; Ollama's own template made 10,736 of the first request, its tools as Go text).
GOLDEN = {
    "first_request": 11717,
    "first_request_qwen": 11588,
    "tool_result_request": 11796,
    "compaction_request": 10746,
    "after_compaction_request": 11904,
    "count_tokens_request": 33119,
}


def payload_of(name: str) -> dict[str, Any]:
    body = json.loads((FIXTURES / f"{name}.json").read_text())
    kind = MessagesRequest if "max_tokens" in body else CountTokensRequest
    request = kind.model_validate(body)
    return to_ollama_request(
        request, model=MODEL, num_ctx=32768, keep_alive="30m", think=False
    ).payload


def test_qwen_vocabulary_matches_qwens_token_ids() -> None:
    encoding = vocab.vocabulary_for("qwen2")
    assert encoding is not None
    assert encoding.encode("Hello world") == [9707, 1879]
    assert encoding.encode("<|im_start|>system\n<tool_call>", allowed_special="all") == [
        151644,
        8948,
        198,
        151657,
    ]
    assert vocab.vocabulary_for("Qwen3") is not None and vocab.vocabulary_for("llama") is None


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_counts_of_captured_claude_code_requests(name: str) -> None:
    payload = payload_of(name)
    measure = TokenCounter().measure(MODEL, QWEN_CODER, payload)
    assert measure.exact and measure.tokens == GOLDEN[name]
    # counted in pieces (tools cached) = the whole rendered prompt encoded at once, and that
    # prompt is the one the model is sent
    encoding = vocab.vocabulary_for("qwen2")
    assert encoding is not None
    text = render(QWEN25, payload["messages"], payload.get("tools", []))
    assert measure.prompt == text and vocab.count(encoding, text) == GOLDEN[name]


# qwen3-coder: Qwen3-Coder's published template, Qwen3's vocabulary (checked as above).
GOLDEN_QWEN3_CODER = {
    "first_request": 12153,
    "tool_result_request": 12234,
    "compaction_request": 11184,
    "after_compaction_request": 12340,
}


@pytest.mark.parametrize("name", sorted(GOLDEN_QWEN3_CODER))
def test_golden_counts_for_qwen3_coder(name: str) -> None:
    payload = payload_of(name)
    measure = TokenCounter().measure("qwen3-coder:30b", QWEN3_CODER, payload)
    assert measure.exact and measure.tokens == GOLDEN_QWEN3_CODER[name]
    encoding = vocab.vocabulary_for("qwen3moe")
    assert encoding is not None
    text = render(QWEN3_CODER_FAMILY, payload["messages"], payload.get("tools", []))
    assert measure.prompt == text and vocab.count(encoding, text) == GOLDEN_QWEN3_CODER[name]


def test_exact_count_is_well_below_the_old_estimate() -> None:
    payload = payload_of("first_request")
    assert raw_estimate(payload) > 1.35 * GOLDEN["first_request"]


def test_tools_section_is_counted_once_per_tool_list(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered: list[int] = []
    real = Qwen25.tools

    def spy(self: Qwen25, tools: Any) -> str:
        rendered.append(len(tools))
        return real(self, tools)

    monkeypatch.setattr(Qwen25, "tools", spy)
    counter = TokenCounter()
    first, second = payload_of("first_request"), payload_of("tool_result_request")
    assert counter.measure(MODEL, QWEN_CODER, first).tokens == GOLDEN["first_request"]
    assert counter.measure(MODEL, QWEN_CODER, second).tokens == GOLDEN["tool_result_request"]
    assert rendered == [len(first["tools"])]  # the second request re-used the first's count


def test_unknown_template_or_family_falls_back_to_the_estimate() -> None:
    payload = payload_of("first_request")
    counter = TokenCounter()
    for profile in (OTHER, ModelProfile("qwen2", "{{ .Prompt }}")):
        measure = counter.measure("other:1b", profile, payload)
        assert not measure.exact and measure.tokens == raw_estimate(payload)


def test_calibration_follows_ollama_down_as_well_as_up() -> None:
    counter = TokenCounter()
    payloads = [
        {"messages": [{"role": "user", "content": f"request {i} " + "word " * 400}]}
        for i in range(16)
    ]
    raw = raw_estimate(payloads[0])
    # Ollama counts 60% of the estimate: after it says so, new prompts are estimated lower
    for p in payloads[:3]:
        counter.observe("m", counter.measure("m", OTHER, p), int(raw_estimate(p) * 0.6))
    lowered = counter.measure("m", OTHER, payloads[3]).tokens
    assert lowered == pytest.approx(raw * 0.6, rel=0.01)
    # one prompt Ollama counts at 1.3× raises it at once
    counter.observe("m", counter.measure("m", OTHER, payloads[4]), int(raw * 1.3))
    assert counter.measure("m", OTHER, payloads[5]).tokens >= raw * 1.3 - 1
    # and it comes down again once that observation is out of the window
    for p in payloads[6:]:
        counter.observe("m", counter.measure("m", OTHER, p), int(raw_estimate(p) * 0.6))
    assert counter.measure("m", OTHER, payloads[0]).tokens < raw * 0.7
    # bounded: an absurd report cannot push the factor past MAX_FACTOR
    counter.observe("m", counter.measure("m", OTHER, payloads[1]), raw * 100)
    assert counter.measure("m", OTHER, payloads[2]).tokens <= raw * tokens.MAX_FACTOR + 1


def test_never_below_what_ollama_counted_for_the_same_prompt() -> None:
    counter = TokenCounter()
    payload = {"messages": [{"role": "user", "content": "word " * 400}]}
    other = {"messages": [{"role": "user", "content": "other " * 400}]}
    first = counter.measure("m", OTHER, payload)
    counter.observe("m", first, first.raw * 2)
    for _ in range(8):  # the calibration window moves on, far below …
        counter.observe("m", counter.measure("m", OTHER, other), first.raw // 2)
    assert counter.measure("m", OTHER, payload).tokens == first.raw * 2  # … but not for it
    exact = counter.measure(MODEL, QWEN_CODER, payload)
    counter.observe(MODEL, exact, exact.tokens + 7)  # Ollama disagrees with an exact count
    assert counter.measure(MODEL, QWEN_CODER, payload).tokens == exact.tokens + 7


def test_a_huge_run_of_one_character_is_counted_not_a_crash() -> None:
    """tiktoken's regex gives up on a million spaces ("Max stack size exceeded"): the text is
    counted in halves instead (a cut can move the count by a token), never a 500."""
    encoding = vocab.vocabulary_for("qwen2")
    assert encoding is not None
    small = vocab.count(encoding, " " * 100_000)  # within what tiktoken handles at once
    huge = vocab.count(encoding, " " * 1_000_000)
    assert abs(huge - 10 * small) <= 16
