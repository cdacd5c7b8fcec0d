"""Qwen3-Coder: the chat template Qwen publishes with the model.

Source: Qwen3-Coder-*-Instruct's chat_template.jinja, as vLLM ships it in
examples/tool_chat_template_qwen3coder.jinja (vllm-project/vllm); Ollama's built-in
`qwen3-coder` renderer follows it (model/renderers/qwen3coder.go) but keeps only the first
system message and drops the others. Transcribed in tests/fixtures/templates/qwen3-coder.jinja;
tests/unit/test_families.py renders it with jinja2 and compares. What it does:
- tools as `<function><name>…<parameters><parameter>…` in the schema's own key order, other
  schema keys as `<key>value</key>` (mappings and lists as JSON, the rest as Python's str);
- an assistant turn shows its (trimmed) text and then each call as
  `<tool_call>\\n<function=NAME>\\n<parameter=KEY>\\nVALUE\\n</parameter>…`;
- every system message after the first stays where it is, as its own system turn;
- consecutive tool results share one user turn.
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

DEFAULT_SYSTEM = (
    "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks."
)
INSTRUCTIONS = (
    "\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with NO "
    "suffix:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>"
    "\nvalue_1\n</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second "
    "parameter\nthat can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n"
    "<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: an inner "
    "<function=...></function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n- You may provide optional reasoning for your "
    "function call in natural language BEFORE the function call, but NOT after\n- If there is "
    "no function call available, answer the question like normal with your current knowledge "
    "and do not tell the user about function calls\n</IMPORTANT>"
)


class Qwen3Coder:
    name = "qwen3-coder"
    vocabulary = "qwen3"

    def around_tools(
        self, messages: Sequence[dict[str, Any]], *, has_tools: bool
    ) -> tuple[str, list[str]]:
        first, turns, bodies = split_system(messages)
        pieces = turn_pieces(turns, lambda i: _turn(turns, bodies, i))
        head = ""
        if first is not None or has_tools:
            head = f"{START}system\n" + (DEFAULT_SYSTEM if first is None else first)
            head += "\n\n" if has_tools else ""
            pieces.insert(0, END + "\n")
        close_last(pieces, messages)
        return head, pieces

    def tools(self, tools: Sequence[dict[str, Any]]) -> str:
        return (
            "# Tools\n\nYou have access to the following functions:\n\n<tools>"
            + "".join(_function(tool.get("function", tool)) for tool in tools)
            + INSTRUCTIONS
        )


def _function(tool: dict[str, Any]) -> str:
    out = "\n<function>\n<name>" + text(tool.get("name", "")) + "</name>"
    if "description" in tool:
        out += "\n<description>" + text(tool["description"]).strip() + "</description>"
    out += "\n<parameters>"
    params = tool.get("parameters")
    properties = params.get("properties") if isinstance(params, dict) else None
    if isinstance(properties, dict):
        for name, fields in properties.items():
            out += "\n<parameter>\n<name>" + name + "</name>"
            if isinstance(fields, dict) and "type" in fields:
                out += "\n<type>" + text(fields["type"]) + "</type>"
            if isinstance(fields, dict) and "description" in fields:
                out += "\n<description>" + text(fields["description"]).strip() + "</description>"
            out += _extra_keys(fields, ("name", "type", "description")) + "\n</parameter>"
    out += _extra_keys(params, ("type", "properties")) + "\n</parameters>"
    out += _extra_keys(tool, ("type", "name", "description", "parameters"))
    return out + "\n</function>"


def _extra_keys(obj: Any, handled: tuple[str, ...]) -> str:
    """The template's render_extra_keys macro: every other key as `<key>value</key>`."""
    if not isinstance(obj, dict):
        return ""
    return "".join(
        f"\n<{key}>{_value(value)}</{key}>" for key, value in obj.items() if key not in handled
    )


def _value(value: Any) -> str:
    """A mapping or list as JSON, anything else as Jinja's `| string`."""
    return tojson(value) if isinstance(value, (dict, list)) else text(value)


def _turn(turns: list[dict[str, Any]], bodies: list[str], i: int) -> str:
    message, body = turns[i], bodies[i]
    role = str(message.get("role", ""))
    calls = message.get("tool_calls")
    if role == "assistant" and calls:
        out = START + "assistant"
        if body.strip():
            out += "\n" + body.strip() + "\n"
        for call in calls:
            function = call.get("function", call)
            out += "\n<tool_call>\n<function=" + text(function.get("name", "")) + ">\n"
            arguments = function.get("arguments")
            for name, value in (arguments if isinstance(arguments, dict) else {}).items():
                out += f"<parameter={name}>\n{_value(value)}\n</parameter>\n"
            out += "</function>\n</tool_call>"
        return out + END + "\n"
    if role == "tool":
        opens = i > 0 and turns[i - 1].get("role") != "tool"  # `loop.previtem` is undefined first
        closes = i == len(turns) - 1 or turns[i + 1].get("role") != "tool"
        out = (START + "user\n" if opens else "") + f"<tool_response>\n{body}\n</tool_response>\n"
        return out + (END + "\n" if closes else "")
    return f"{START}{role}\n{body}{END}\n"


QWEN3_CODER = Qwen3Coder()
