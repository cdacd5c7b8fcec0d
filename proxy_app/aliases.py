"""Which Ollama model serves a requested model id."""

from __future__ import annotations

CLAUDE_MARKERS = ("claude", "anthropic")


def resolve_model(requested: str, default: str, aliases: dict[str, str]) -> str:
    """Exact alias first, then an alias key contained in the id (`haiku`), then any Claude id
    to the default model; anything else is taken as an Ollama model name.

    >>> resolve_model("claude-haiku-4-5", "qwen2.5-coder:7b", {"haiku": "qwen2.5-coder:1.5b"})
    'qwen2.5-coder:1.5b'
    """
    if requested in aliases:
        return aliases[requested]
    lowered = requested.lower()
    for key, target in aliases.items():
        if key.lower() in lowered:
            return target
    if any(marker in lowered for marker in CLAUDE_MARKERS):
        return default
    return requested
