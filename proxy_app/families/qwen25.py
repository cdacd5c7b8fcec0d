"""Qwen2.5 and Qwen2.5-Coder (Instruct): the chat template Qwen publishes with the model.

Source: `chat_template` of Qwen2.5-*-Instruct's tokenizer_config.json (the Coder models ship
the same one), as vendored by llama.cpp in models/templates/Qwen-Qwen2.5-7B-Instruct.jinja
(llama-cpp-python 0.3.36's sdist, vendor/llama.cpp). Transcribed in
tests/fixtures/templates/qwen2.5-instruct.jinja; tests/unit/test_families.py renders it with
jinja2 and compares. What it does, unlike Ollama's Go template for these models:
- tools as JSON (`tool | tojson`), not Go struct text (ollama/ollama#14601);
- an assistant turn shows its text *and* its calls (Ollama's shows one or the other);
- a system message after the first stays where it is, as its own system turn (Ollama joins
  them all into the top one, ollama/ollama#18431);
- consecutive tool results share one user turn, each in `<tool_response>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from proxy_app.families.chatml import (
    END,
    START,
    close_last,
    split_system,
    text,
    tojson,
    turn_pieces,
)

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
TOOLS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
INSTRUCTIONS = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


class Qwen25:
    name = "qwen2.5"
    vocabulary = "qwen2"

    def around_tools(
        self, messages: Sequence[dict[str, Any]], *, has_tools: bool
    ) -> tuple[str, list[str]]:
        first, turns, bodies = split_system(messages)
        system = DEFAULT_SYSTEM if first is None else first
        pieces = turn_pieces(turns, lambda i: _turn(turns, bodies, i))
        if has_tools:
            head = f"{START}system\n{system}\n\n"
            pieces.insert(0, END + "\n")
        else:
            head = f"{START}system\n{system}{END}\n"
        close_last(pieces, messages)
        return head, pieces

    def tools(self, tools: Sequence[dict[str, Any]]) -> str:
        return TOOLS + "".join("\n" + tojson(tool) for tool in tools) + INSTRUCTIONS


def _turn(messages: list[dict[str, Any]], texts: list[str], i: int) -> str:
    message, body = messages[i], texts[i]
    role = str(message.get("role", ""))
    calls = message.get("tool_calls")
    if role in ("user", "system") or (role == "assistant" and not calls):
        return f"{START}{role}\n{body}{END}\n"
    if role == "assistant":
        out = START + "assistant" + (f"\n{body}" if body else "")
        for call in calls or []:
            function = call.get("function", call)
            out += '\n<tool_call>\n{"name": "' + text(function.get("name", ""))
            out += '", "arguments": ' + tojson(function.get("arguments")) + "}\n</tool_call>"
        return out + END + "\n"
    if role == "tool":
        first = i == 0 or messages[i - 1].get("role") != "tool"
        closes = i == len(messages) - 1 or messages[i + 1].get("role") != "tool"
        out = (START + "user" if first else "") + f"\n<tool_response>\n{body}\n</tool_response>"
        return out + (END + "\n" if closes else "")
    return ""  # the template renders no other role


QWEN25 = Qwen25()
