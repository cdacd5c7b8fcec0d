"""What the ChatML families share: Hugging Face's `tojson`, message text, and the turn markers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

START, END = "<|im_start|>", "<|im_end|>"
GENERATION_PROMPT = START + "assistant\n"


def tojson(value: Any) -> str:
    """The `tojson` filter of Hugging Face's chat templates (transformers' chat_template_utils):
    json.dumps with Python's default separators, key order kept, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False)


def text(value: Any) -> str:
    """Jinja's `| string` of a decoded JSON value: Python's str (True, None, 1.5)."""
    return value if isinstance(value, str) else str(value)


def with_image_tags(message: dict[str, Any], first_image: int) -> str:
    """A message's text, with Ollama's `[img-N]` tags for attached images (server/prompt.go;
    the published templates take text only: a tag marks where an image was)."""
    body = str(message.get("content") or "")
    prefix = ""
    for n in range(first_image, first_image + len(message.get("images") or [])):
        if "[img]" in body:
            body = body.replace("[img]", f"[img-{n}]", 1)
        else:
            prefix += f"[img-{n}]"
    return prefix + body


def contents(messages: list[dict[str, Any]]) -> list[str]:
    """Every message's text, images numbered across the conversation."""
    out, images = [], 0
    for message in messages:
        out.append(with_image_tags(message, images))
        images += len(message.get("images") or [])
    return out


def split_system(
    messages: Sequence[dict[str, Any]],
) -> tuple[str | None, list[dict[str, Any]], list[str]]:
    """The first message's text when it is a system one (the templates' `messages[0]`), and
    the other messages with their texts (images tagged across the whole conversation)."""
    listed = list(messages)
    texts = contents(listed)
    if listed and listed[0].get("role") == "system":
        return texts[0], listed[1:], texts[1:]
    return None, listed, texts


def turn_pieces(turns: list[dict[str, Any]], render: Callable[[int], str]) -> list[str]:
    """`render(i)` of every turn, one piece each; consecutive tool results share one user turn
    and so one piece (no token boundary is sure between them)."""
    pieces: list[str] = []
    for i, message in enumerate(turns):
        piece = render(i)
        if message.get("role") == "tool" and i > 0 and turns[i - 1].get("role") == "tool":
            pieces[-1] += piece
        elif piece:
            pieces.append(piece)
    return pieces


def close_last(pieces: list[str], messages: Sequence[dict[str, Any]]) -> None:
    """End the prompt as `add_generation_prompt` does, or, when the conversation ends with an
    assistant turn (a prefill), leave that turn open for the model to continue (Hugging Face's
    `continue_final_message`)."""
    if not pieces:
        pieces.append(GENERATION_PROMPT)
    elif messages and messages[-1].get("role") == "assistant":
        pieces[-1] = pieces[-1].removesuffix(END + "\n")
    else:
        pieces[-1] += GENERATION_PROMPT
