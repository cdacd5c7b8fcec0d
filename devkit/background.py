"""Claude Code's Haiku-class background call and the two models it goes between: what the
background-routing tests and the background-slots benchmark both send."""

from __future__ import annotations

from typing import Any

# The main model, and the small one background calls go to when Ollama has it
# (proxy_app's PROXY_DEFAULT_MODEL and PROXY_BACKGROUND_MODEL defaults).
MAIN, SMALL = "qwen2.5-coder:7b", "qwen2.5-coder:1.5b"
# A title request, as Claude Code sends one after a turn.
TITLE: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "system": "Write a five-word title for the conversation.",
    "messages": [{"role": "user", "content": "say hi"}],
}
