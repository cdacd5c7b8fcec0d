"""The floor on a prompt's tokens from its size (proxy_app.bound): sound for Qwen's vocabulary,
below every exact count and estimate, and refusing before anything is counted."""

from __future__ import annotations

from typing import Any

import pytest

from proxy_app import vocab
from proxy_app.bound import MAX_TOKEN_BYTES, least_tokens, refuse_unfittable
from proxy_app.errors import PromptTooLongError
from proxy_app.tokens import TokenCounter
from tests.unit.test_tokens import GOLDEN, MODEL, OTHER, QWEN3_CODER, QWEN_CODER, payload_of


@pytest.mark.parametrize("family", sorted(vocab.FAMILIES))
def test_no_token_of_the_vocabulary_is_longer_than_the_floor_assumes(family: str) -> None:
    encoding = vocab.vocabulary_for(family)
    assert encoding is not None
    longest = max(
        len(encoding.decode_single_token_bytes(rank)) for rank in range(encoding.n_vocab - 1)
    )
    specials = max(len(token.encode()) for token in encoding.special_tokens_set)
    assert max(longest, specials) == MAX_TOKEN_BYTES  # 128 spaces; exact, not a margin


@pytest.mark.parametrize("text", [" ", "=", "\n", "a", "é", "<|im_start|>", "你好"])
def test_worst_case_text_is_never_below_the_floor(text: str) -> None:
    """Runs of the characters that make the longest tokens still count above the floor."""
    counter = TokenCounter()
    payload = {"messages": [{"role": "user", "content": text * 300_000}]}
    assert counter.measure(MODEL, QWEN_CODER, payload).tokens >= least_tokens(payload)


@pytest.mark.parametrize(
    "profile", [QWEN_CODER, QWEN3_CODER, OTHER], ids=["qwen2.5", "qwen3", "other"]
)
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_floor_is_below_every_count_of_the_captured_requests(name: str, profile: Any) -> None:
    payload = payload_of(name)
    floor = least_tokens(payload)
    assert 0 < floor < TokenCounter().measure(MODEL, profile, payload).tokens


def test_system_assistant_and_tools_are_left_out() -> None:
    """Text a template may drop or reshape never raises the floor."""
    payload = {
        "messages": [
            {"role": "system", "content": "s" * 10_000},
            {"role": "assistant", "content": "a" * 10_000},
            {"role": "user", "content": "u" * 256},
            {"role": "tool", "content": "t" * 1},
        ],
        "tools": [{"function": {"description": "d" * 10_000}}],
    }
    assert least_tokens(payload) == 3  # ceil(257 / 128)


def test_a_prompt_whose_size_proves_it_too_long_is_refused_with_the_floor() -> None:
    payload = {"messages": [{"role": "user", "content": "x" * (128 * 1000 + 1)}]}
    with pytest.raises(PromptTooLongError) as raised:
        refuse_unfittable(payload, 1000)
    assert raised.value.message == "prompt is too long: 1001 tokens > 1000 maximum"
    refuse_unfittable(payload, 1001)  # fits by size: left to the exact count
