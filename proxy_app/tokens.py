"""Token estimates for count_tokens and the context guard; they err high and self-calibrate.

Ollama has no tokenize endpoint, so the estimate counts the characters the model will read:
message text, tool-call arguments and the tool schemas (which Ollama renders into the prompt
as JSON), at a conservative CHARS_PER_TOKEN for code and JSON, plus a per-message template
overhead. Each finished generation reports Ollama's real `prompt_eval_count`; when that is
larger than the estimate the correction factor rises to match, so the estimate never stays
below what Ollama has been seen to count (see README, "How count_tokens is calibrated").
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import orjson

CHARS_PER_TOKEN = 3.0
MESSAGE_OVERHEAD = 4
TOOL_OVERHEAD = 12
PROMPT_OVERHEAD = 16


def raw_estimate(payload: dict[str, Any]) -> int:
    """Uncalibrated estimate of the prompt tokens of an Ollama /api/chat body."""
    chars = 0
    non_ascii = 0
    messages = payload.get("messages", [])
    for message in messages:
        content = message.get("content") or ""
        chars += len(content)
        if not content.isascii():
            non_ascii += len(content) - len(content.encode("ascii", "ignore"))
        if message.get("tool_calls"):
            chars += len(orjson.dumps(message["tool_calls"]))
        chars += 1000 * len(message.get("images") or [])  # an image is several hundred tokens
    tools = payload.get("tools") or []
    if tools:
        chars += len(orjson.dumps(tools))
    ascii_chars = chars - non_ascii
    return (
        math.ceil(ascii_chars / CHARS_PER_TOKEN)
        + non_ascii
        + MESSAGE_OVERHEAD * len(messages)
        + TOOL_OVERHEAD * len(tools)
        + PROMPT_OVERHEAD
    )


class TokenEstimator:
    """raw_estimate × a factor that follows Ollama's real counts upward, never below 1."""

    def __init__(self, window: int = 64) -> None:
        self._ratios: deque[float] = deque(maxlen=window)

    @property
    def factor(self) -> float:
        return max(1.0, max(self._ratios, default=1.0))

    def scale(self, raw: int) -> int:
        """The calibrated estimate for a prompt whose raw_estimate is `raw`."""
        return math.ceil(raw * self.factor)

    def observe(self, raw: int, prompt_eval_count: int) -> None:
        """Record Ollama's count for a prompt; ignored when it is implausibly small (KV reuse)."""
        if raw > 0 and prompt_eval_count > raw // 4:
            self._ratios.append(min(prompt_eval_count / raw, 3.0))
