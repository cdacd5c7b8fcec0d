"""A conversation as OpenAI chat messages, for an engine that renders its model's own template
(llama.cpp's `/apply-template`, which takes what its `/v1/chat/completions` takes).

A template with a tools section gets the tools and the calls as OpenAI's fields. A template
without one (SmolLM2's, many small models') would drop Claude Code's tools silently; there the
documented fallback is Qwen2.5's convention carried in plain text: the tools section (JSON
signatures and the `<tool_call>` instructions) appended to the first system message, earlier
calls written as `<tool_call>` JSON in the assistant's text, and results as a user turn of
`<tool_response>` blocks. The answer's calls are read back by proxy_app.families.toolcalls,
as for any call written as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from proxy_app.families.chatml import tojson
from proxy_app.families.qwen25 import QWEN25

Message = dict[str, Any]


def chat_messages(
    messages: Sequence[Message], tools: Sequence[Message], *, template_has_tools: bool
) -> list[Message]:
    """`messages` (translate.py's body: Ollama's shape) as OpenAI chat messages; with tools
    the template cannot show, the tools and calls in text (the fallback above)."""
    if template_has_tools or not tools:
        return [_native(message) for message in messages]
    return _with_tools_in_text(messages, tools)


def _native(message: Message) -> Message:
    out: Message = {"role": message["role"], "content": message.get("content") or ""}
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": call["function"]["name"],
                    "arguments": orjson.dumps(call["function"].get("arguments") or {}).decode(),
                },
            }
            for i, call in enumerate(calls)
        ]
    return out


def _with_tools_in_text(messages: Sequence[Message], tools: Sequence[Message]) -> list[Message]:
    section = QWEN25.tools(tools)
    out: list[Message] = []
    if not messages or messages[0]["role"] != "system":
        out.append({"role": "system", "content": section})
    for i, message in enumerate(messages):
        role, content = message["role"], message.get("content") or ""
        if i == 0 and role == "system":
            out.append({"role": "system", "content": f"{content}\n\n{section}"})
        elif role == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1].get("results"):  # consecutive results: one user turn
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "results": True})
        elif role == "assistant" and message.get("tool_calls"):
            out.append({"role": "assistant", "content": content + _calls_text(message)})
        else:
            out.append({"role": role, "content": content})
    return [{k: v for k, v in m.items() if k != "results"} for m in out]


def _calls_text(message: Message) -> str:
    """The calls as Qwen2.5's template writes them after the assistant's text."""
    return "".join(
        '\n<tool_call>\n{"name": "'
        + str(call["function"]["name"])
        + '", "arguments": '
        + tojson(call["function"].get("arguments") or {})
        + "}\n</tool_call>"
        for call in message.get("tool_calls") or []
    )
