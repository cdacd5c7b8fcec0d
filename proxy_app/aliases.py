"""Which Ollama model serves a requested model id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

CLAUDE_MARKERS = ("claude", "anthropic")
BACKGROUND_MARKER = "haiku"  # Claude Code's background calls (titles, summaries, checks)


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


async def route_model(
    requested: str,
    *,
    default: str,
    aliases: dict[str, str],
    background: str,
    available: Callable[[str], Awaitable[bool]],
) -> str:
    """resolve_model, except that a Haiku-class Claude id no alias names goes to the
    background model when Ollama has it: a second, small model keeps the main model's KV cache
    (the conversation) from being evicted by Claude Code's calls between turns."""
    target = resolve_model(requested, default, aliases)
    lowered = requested.lower()
    background_call = BACKGROUND_MARKER in lowered and target == default
    unaliased = not any(k.lower() in lowered for k in aliases)
    if background_call and background and unaliased and await available(background):
        return background
    return target
