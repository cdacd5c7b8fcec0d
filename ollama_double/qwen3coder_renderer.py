"""The prompt Ollama renders for qwen3-coder, character for character (for exact counts).

qwen3-coder has no Go template in Ollama: its Modelfile names a built-in renderer,
`RENDERER qwen3-coder` (ollama model/renderers/qwen3coder.go, which follows Qwen3-Coder's
published chat template), and /api/show reports `"renderer": "qwen3-coder"`. What it does:
- only the first system message is kept, the others are dropped (Claude Code's
  mid-conversation reminders never reach the model); with tools and no system message a default
  one is used;
- tools are XML: `<function><name>…<parameters><parameter><name>…<type>…` in the request's
  key order, other schema keys as `<key>json</key>`;
- assistant tool calls are `<tool_call>\\n<function=NAME>\\n<parameter=KEY>\\nVALUE…`;
  consecutive tool results share one user turn, each in `<tool_response>`;
- no turn merging, no `[img-N]` tags (renderers handle media themselves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ollama_double.gofmt import go_json, go_print

DEFAULT_SYSTEM = (
    "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks."
)
TOOLS_MARK = "# Tools"
INSTRUCTIONS = (
    "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
    "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n"
    "</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\n"
    "that can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\n"
    "Reminder:\n- Function calls MUST follow the specified format: an inner <function=...>"
    "</function> block must be nested within <tool_call></tool_call> XML tags\n- Required "
    "parameters MUST be specified\n- You may provide optional reasoning for your function call "
    "in natural language BEFORE the function call, but NOT after\n- If there is no function call "
    "available, answer the question like normal with your current knowledge and do not tell the "
    "user about function calls\n</IMPORTANT>"
)
# api.ToolProperty's fields other than type/description, in its (JSON) field order.
_PROPERTY_KEYS = ("anyOf", "items", "enum", "properties", "required")
_PARAMETERS_KEYS = ("$defs", "items", "required")


class Qwen3CoderRenderer:
    """Renders like Ollama's Qwen3CoderRenderer, in token-exact pieces (see chat_template)."""

    name = "qwen3-coder"

    def around_tools(
        self, messages: Sequence[dict[str, Any]], *, has_tools: bool, default_system: str = ""
    ) -> tuple[str, list[str]]:
        if default_system and (not messages or messages[0].get("role") != "system"):
            messages = [{"role": "system", "content": default_system}, *messages]
        systems = (str(m.get("content") or "") for m in messages if m.get("role") == "system")
        system = next((text for text in systems if text), "")  # the first non-empty one wins
        turns = [m for m in messages if m.get("role") != "system"]
        head, pieces = "", []
        if system or has_tools:
            head = "<|im_start|>system\n" + (system or DEFAULT_SYSTEM)
            head += "\n\n" if has_tools else ""
            pieces.append("<|im_end|>\n")
        for i, message in enumerate(turns):
            piece = _turn(turns, i)
            if message.get("role") == "tool" and i > 0 and turns[i - 1].get("role") == "tool":
                pieces[-1] += piece  # one user turn for consecutive results: no clean boundary
            else:
                pieces.append(piece)
        return head, pieces

    def tools(self, tools: Sequence[dict[str, Any]]) -> str:
        return (
            f"{TOOLS_MARK}\n\nYou have access to the following functions:\n\n<tools>"
            + "".join(_tool(t.get("function") or {}) for t in tools)
            + "\n</tools>"
            + INSTRUCTIONS
        )


def _tool(function: dict[str, Any]) -> str:
    out = "\n<function>\n<name>" + str(function.get("name", "")) + "</name>"
    if function.get("description"):
        out += "\n<description>" + str(function["description"]) + "</description>"
    out += "\n<parameters>"
    params = function.get("parameters") or {}
    for name, prop in (params.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        out += "\n<parameter>\n<name>" + name + "</name>"
        kind = prop.get("type")
        if kind:
            kinds = [kind] if isinstance(kind, str) else list(kind)
            out += "\n<type>" + (kinds[0] if len(kinds) == 1 else go_json(kinds)) + "</type>"
        if prop.get("description"):
            out += "\n<description>" + str(prop["description"]) + "</description>"
        out += _additional(prop, _PROPERTY_KEYS)
        out += "\n</parameter>"
    out += _additional(params, _PARAMETERS_KEYS)
    return out + "\n</parameters>\n</function>"


def _additional(obj: dict[str, Any], keys: tuple[str, ...]) -> str:
    """renderAdditionalKeys: the modelled keys that are set, as `<key>json</key>` (Ollama
    iterates a Go map here, in no fixed order; the token count does not depend on it)."""
    out = ""
    for key in keys:
        value = obj.get(key)
        if value in (None, "", [], {}) or (key == "properties" and not isinstance(value, dict)):
            continue
        if key == "properties":
            value = {k: _modelled(v) for k, v in value.items()}
        elif key == "anyOf":
            value = [_modelled(v) for v in value]
        text = go_json(value) if isinstance(value, (dict, list)) else go_print(value)
        out += f"\n<{key}>{text}</{key}>"
    return out


def _modelled(prop: Any) -> dict[str, Any]:
    """A nested property as api.ToolProperty keeps it: only its modelled, non-empty keys."""
    if not isinstance(prop, dict):
        return {}
    keys = ("anyOf", "type", "items", "description", "enum", "properties", "required")
    kept = {k: prop[k] for k in keys if prop.get(k) not in (None, "", [], {})}
    if isinstance(kept.get("type"), list) and len(kept["type"]) == 1:
        kept["type"] = kept["type"][0]  # PropertyType prints one type bare
    if "properties" in kept:
        kept["properties"] = {k: _modelled(v) for k, v in kept["properties"].items()}
    if "anyOf" in kept:
        kept["anyOf"] = [_modelled(v) for v in kept["anyOf"]]
    return kept


def _turn(turns: list[dict[str, Any]], i: int) -> str:
    message = turns[i]
    role, content = str(message.get("role", "")), str(message.get("content") or "")
    last = i == len(turns) - 1
    prefill = last and role == "assistant"
    if role == "assistant" and message.get("tool_calls"):
        out = "<|im_start|>assistant\n" + (content + "\n" if content else "")
        for call in message["tool_calls"]:
            function = call.get("function") or {}
            out += "\n<tool_call>\n<function=" + str(function.get("name", "")) + ">"
            for name, value in (function.get("arguments") or {}).items():
                out += f"\n<parameter={name}>\n{_argument(value)}\n</parameter>"
            out += "\n</function>\n</tool_call>"
        out += "<|im_end|>\n"
    elif role == "assistant":
        out = "<|im_start|>assistant\n" + content + ("" if prefill else "<|im_end|>\n")
    elif role == "tool":
        first = i == 0 or turns[i - 1].get("role") != "tool"
        closes = last or turns[i + 1].get("role") != "tool"
        out = ("<|im_start|>user" if first else "") + f"\n<tool_response>\n{content}\n"
        out += "</tool_response>" + ("<|im_end|>\n" if closes else "")
    else:
        out = f"<|im_start|>{role}\n{content}<|im_end|>\n"
    return out + ("<|im_start|>assistant\n" if last and not prefill else "")


def _argument(value: Any) -> str:
    """formatToolCallArgument: strings raw, maps and lists as Go JSON, the rest as fmt's %v."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return go_json(value)
    return go_print(value)
