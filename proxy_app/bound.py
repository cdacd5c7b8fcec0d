"""The least number of tokens a prompt can be, from its size alone, before it is counted.

Counting renders and tokenizes the whole prompt; a prompt of megabytes that can never fit the
window would cost that in full before its "prompt is too long". A token is a run of bytes of
the prompt, so a prompt of B bytes is at least B / MAX_TOKEN_BYTES tokens, whatever it says.

MAX_TOKEN_BYTES = 128: the longest token in Qwen's vocabulary (qwen.tiktoken, 151,643 ranks)
is 128 bytes, a run of 128 spaces (the next: 114 bytes of `//----…`); its added tokens
(`<|im_start|>`…) are at most 20 bytes. Measured: 1 MB of spaces encodes at 127.98 bytes per
token, of `=` at 64, of newlines at 32, of letters at 8 (tests/unit/test_bound.py asserts the
vocabulary's longest token). It is a hard limit, not a statistic: no legal prompt is refused.

Only the text every chat template prints verbatim is summed — the content of user and tool
messages — in characters (never more than its bytes): system and assistant turns, tool
schemas and images may be dropped or reshaped by a template and are left out, so the floor
stays below the exact count. It is also below the estimate used for other models (at least
one token per 6 characters), so it never refuses what their count would let through.
"""

from __future__ import annotations

from typing import Any

from proxy_app.errors import PromptTooLongError

MAX_TOKEN_BYTES = 128
VERBATIM_ROLES = frozenset({"user", "tool"})


def least_tokens(payload: dict[str, Any]) -> int:
    """A floor on the prompt tokens of an Ollama /api/chat body."""
    chars = 0
    for message in payload.get("messages") or []:
        content = message.get("content")
        if message.get("role") in VERBATIM_ROLES and isinstance(content, str):
            chars += len(content)
    return -(-chars // MAX_TOKEN_BYTES)


def refuse_unfittable(payload: dict[str, Any], limit: int) -> None:
    """Raise PromptTooLongError when the prompt's floor is already over `limit` (no count)."""
    floor = least_tokens(payload)
    if floor > limit:
        raise PromptTooLongError(floor, limit)
