"""Token estimates for count_tokens and the context guard; they err high and self-calibrate.

Ollama has no tokenize endpoint, so the estimate counts the characters the model will read:
message text, tool-call arguments and the tool schemas (which Ollama renders into the prompt
as JSON), at a conservative CHARS_PER_TOKEN for code and JSON, plus a per-message template
overhead. Each finished generation reports Ollama's real `prompt_eval_count`; when that is
larger than the estimate the correction factor rises to match, so the estimate never stays
below what Ollama has been seen to count (see README, "How count_tokens is calibrated").
"""

from __future__ import annotations

import json
import math
from collections import deque
from typing import Any

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
        non_ascii += sum(1 for ch in content if ord(ch) > 127) if not content.isascii() else 0
        if message.get("tool_calls"):
            chars += len(json.dumps(message["tool_calls"], ensure_ascii=False))
        chars += 1000 * len(message.get("images") or [])  # an image is several hundred tokens
    tools = payload.get("tools") or []
    if tools:
        chars += len(json.dumps(tools, ensure_ascii=False))
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

    def estimate(self, payload: dict[str, Any]) -> int:
        return math.ceil(raw_estimate(payload) * self.factor)

    def observe(self, payload: dict[str, Any], prompt_eval_count: int) -> None:
        """Record Ollama's count for a prompt; ignored when it is implausibly small (KV reuse)."""
        raw = raw_estimate(payload)
        if raw > 0 and prompt_eval_count > raw // 4:
            self._ratios.append(min(prompt_eval_count / raw, 3.0))
