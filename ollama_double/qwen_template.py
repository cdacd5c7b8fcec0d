"""The prompt Ollama 0.32.7 builds for /api/chat with its qwen2.5(-coder) Go templates.

What the Ollama double reports as `prompt_eval_count` for an /api/chat request, character for
character: `collate` merges consecutive same-role turns with "\\n\\n" (tool turns excepted) and
joins every system message, wherever it stands, into `.System` (ollama#18431); the model's
SYSTEM is prepended when the first message is not a system one; an assistant turn with text
shows only the text (its tool calls are dropped); `{{ .Function }}` prints Go struct syntax
instead of JSON since Ollama v0.14 (ollama/ollama#14601), e.g.
`{Bash Runs a command {object <nil> <nil> [command] {"command":{…}}}}`. Checked byte for byte
against Ollama's own template code with devkit/ollama_render. proxy_app never sends these
prompts for the Qwen families: it renders their published template (proxy_app/families).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ollama_double.gofmt import go_json, go_print
from proxy_app.engines.chat_template import QwenTemplate
from proxy_app.families.chatml import with_image_tags

TOOLS_MARK = "# Tools"


def render_tools(template: QwenTemplate, tools: Sequence[dict[str, Any]]) -> str:
    """The tools section of the system turn, from "# Tools" to the closing `</tool_call>`."""
    lines = "".join(
        '\n{"type": "function", "function": ' + _function_v(tool.get("function") or {}) + "}"
        for tool in tools
    )
    return (
        f"{TOOLS_MARK}\n\nYou may call one or more functions to assist with the user query.\n\n"
        f"{template.tools_intro}\n<tools>{lines}\n</tools>\n\n{template.call_instruction}\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def render_around_tools(
    messages: Sequence[dict[str, Any]], *, has_tools: bool, default_system: str = ""
) -> tuple[str, list[str]]:
    """The prompt before the tools section, and after it in pieces: one per turn.

    head + render_tools(…) + "".join(pieces) is the prompt, and every boundary is token-exact:
    the head ends in a newline and the tools section starts with "#", so no BPE piece crosses
    it; each later piece starts with a special token (`<|im_end|>`, `<|im_start|>`).
    """
    if default_system and (not messages or messages[0].get("role") != "system"):
        messages = [{"role": "system", "content": default_system}, *messages]
    system, turns = _collate(messages)
    head = ""
    pieces = []
    if system or has_tools:
        head = "<|im_start|>system" + (f"\n{system}" if system else "")
        head += "\n\n" if has_tools else ""
        pieces.append("<|im_end|>\n")
    for i, turn in enumerate(turns):
        pieces.append(_turn(turn, last=i == len(turns) - 1))
    return head, pieces


def render(
    template: QwenTemplate,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] = (),
    *,
    default_system: str = "",
) -> str:
    """The whole prompt Ollama sends to the model for this /api/chat body."""
    head, pieces = render_around_tools(
        messages, has_tools=bool(tools), default_system=default_system
    )
    return head + (render_tools(template, tools) if tools else "") + "".join(pieces)


def _collate(messages: Sequence[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    systems: list[str] = []
    turns: list[dict[str, Any]] = []
    images = 0
    for message in messages:
        role = str(message.get("role", "")).lower()
        content = with_image_tags(message, images)
        images += len(message.get("images") or [])
        if role == "system":
            systems.append(content)
        if turns and turns[-1]["role"] == role and role != "tool":
            turns[-1]["content"] += "\n\n" + content
        else:
            turns.append({"role": role, "content": content, "calls": message.get("tool_calls")})
    return "\n\n".join(systems), turns


def _turn(turn: dict[str, Any], *, last: bool) -> str:
    role, content = turn["role"], turn["content"]
    out = ""
    if role == "user":
        out = f"<|im_start|>user\n{content}<|im_end|>\n"
    elif role == "assistant":
        out = "<|im_start|>assistant\n"
        if content:
            out += content
        elif turn["calls"]:
            out += "<tool_call>\n" + "".join(_call(c) for c in turn["calls"]) + "</tool_call>"
        out += "" if last else "<|im_end|>\n"
    elif role == "tool":
        out = f"<|im_start|>user\n<tool_response>\n{content}\n</tool_response><|im_end|>\n"
    if role != "assistant" and last:
        out += "<|im_start|>assistant\n"
    return out


def _call(call: dict[str, Any]) -> str:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    args = go_json(arguments) if isinstance(arguments, dict) and arguments else "{}"
    return f'{{"name": "{function.get("name", "")}", "arguments": {args}}}\n'


def _function_v(function: dict[str, Any]) -> str:
    """fmt's %v of Ollama's templateToolFunction{Name, Description, Parameters{…}}."""
    params = function.get("parameters") or {}
    required = params.get("required") or []
    fields = [
        str(params.get("type", "")),
        go_print(params.get("$defs")),
        go_print(params.get("items")),
        "[" + " ".join(str(r) for r in required) + "]",
        _properties_json(params.get("properties")),
    ]
    name, description = function.get("name", ""), function.get("description", "")
    return f"{{{name} {description} {{{' '.join(fields)}}}}}"


def _properties_json(properties: Any) -> str:
    """templateProperties.String(): json.Marshal of map[string]api.ToolProperty (keys sorted)."""
    if not isinstance(properties, dict):
        return "{}"
    body = ",".join(
        f"{go_json(name)}:{_property_json(properties[name])}" for name in sorted(properties)
    )
    return "{" + body + "}"


def _property_json(prop: Any) -> str:
    """api.ToolProperty's JSON: only the fields Ollama models, in its field order."""
    if not isinstance(prop, dict):
        return "{}"
    parts: list[str] = []
    if prop.get("anyOf"):
        parts.append('"anyOf":[' + ",".join(_property_json(p) for p in prop["anyOf"]) + "]")
    kind = prop.get("type")
    if kind:
        if isinstance(kind, list) and len(kind) == 1:  # PropertyType prints one type bare
            kind = kind[0]
        parts.append('"type":' + go_json(kind))
    if prop.get("items") is not None:
        parts.append('"items":' + go_json(prop["items"]))
    if prop.get("description"):
        parts.append('"description":' + go_json(prop["description"]))
    if prop.get("enum"):
        parts.append('"enum":' + go_json(prop["enum"]))
    if isinstance(prop.get("properties"), dict):
        nested = ",".join(  # a nested ToolPropertiesMap keeps the request's key order
            f"{go_json(k)}:{_property_json(v)}" for k, v in prop["properties"].items()
        )
        parts.append('"properties":{' + nested + "}")
    if prop.get("required"):
        parts.append('"required":' + go_json(prop["required"]))
    return "{" + ",".join(parts) + "}"
