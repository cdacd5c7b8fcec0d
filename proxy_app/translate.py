"""Pure translation of an Anthropic Messages request into an Ollama `/api/chat` body.

One helper per block kind. Nothing here does I/O or imports FastAPI; errors are raised as
InvalidRequestError naming the offending field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from proxy_app.api.anthropic import Block, CountTokensRequest, MessagesRequest
from proxy_app.api.blocks import block_text, block_type, image_data, required
from proxy_app.api.nesting import json_depth
from proxy_app.errors import InvalidRequestError

log = logging.getLogger(__name__)

# Claude Code's per-conversation "x-anthropic-billing-header: cc_version=…" system block changes
# every conversation; forwarded, it defeats Ollama's prompt (KV) reuse (llama.cpp #19494).
BILLING_PREFIX = "x-anthropic-"

TOOL_CHOICE_HINTS = {
    "any": "Answer by calling one of the offered tools.",
    "tool": "Answer by calling the tool `{name}`.",
}


@dataclass
class Upstream:
    """What one Anthropic request becomes: the Ollama body plus what the response side needs."""

    payload: dict[str, Any]
    tool_names: list[str] = field(default_factory=list)
    stop_sequences: list[str] = field(default_factory=list)

    def key_material(self) -> dict[str, Any]:
        """Everything that changes the answer, for the response cache's key."""
        return {**self.payload, "x_stop_sequences": self.stop_sequences}


def system_text(system: str | list[Block] | None) -> str:
    """Join the system prompt's text blocks, dropping Claude Code's billing-header block."""
    if system is None:
        return ""
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
    texts = []
    for i, block in enumerate(blocks):
        text = block_text(block, f"system.{i}")
        if text and not text.startswith(BILLING_PREFIX):
            texts.append(text)
    return "\n\n".join(texts)


def to_ollama_messages(request: CountTokensRequest) -> list[dict[str, Any]]:
    """Translate `system` and `messages`; system-role messages keep their position."""
    out: list[dict[str, Any]] = []
    system = system_text(request.system)
    if system:
        out.append({"role": "system", "content": system})
    tool_names: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        where = f"messages.{i}.content"
        blocks = message.content
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        if message.role == "assistant":
            _append(out, _assistant_message(blocks, where, tool_names))
        elif message.role == "system":
            _append(out, {"role": "system", "content": _joined_text(blocks, where)})
        else:
            for turn in _user_messages(blocks, where, tool_names):
                _append(out, turn)
    return out


def to_ollama_tools(request: CountTokensRequest) -> list[dict[str, Any]]:
    """Client tools as Ollama function tools; server tools (web search…) are dropped."""
    choice = request.tool_choice
    if not request.tools or (choice is not None and choice.type == "none"):
        return []
    tools = []
    for tool in request.tools:
        if tool.input_schema is None:
            log.debug("dropping server tool %s (%s)", tool.name, tool.type)
            continue
        if choice is not None and choice.type == "tool" and tool.name != choice.name:
            continue
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:  # name, description, parameters: the order models are trained on
            function["description"] = tool.description
        function["parameters"] = tool.input_schema
        tools.append({"type": "function", "function": function})
    if choice is not None and choice.type == "tool" and not tools:
        raise InvalidRequestError(f"tool_choice.name: no tool named {choice.name!r} was offered")
    return tools


def to_ollama_request(
    request: CountTokensRequest,
    *,
    model: str,
    num_ctx: int,
    keep_alive: str,
    think: bool,
) -> Upstream:
    """Build the `/api/chat` body; `num_ctx` and `truncate: false` are always set."""
    messages = to_ollama_messages(request)
    tools = to_ollama_tools(request)
    choice = request.tool_choice
    if tools and choice is not None and choice.type in TOOL_CHOICE_HINTS:
        hint = TOOL_CHOICE_HINTS[choice.type].format(name=choice.name)
        messages.append({"role": "system", "content": hint})
    options: dict[str, Any] = {"num_ctx": num_ctx}
    stop: list[str] = []
    if isinstance(request, MessagesRequest):
        options["num_predict"] = request.max_tokens
        for name in ("temperature", "top_p", "top_k"):
            value = getattr(request, name)
            if value is not None:
                options[name] = value
        # Stop sequences are matched by the proxy, not Ollama: Ollama strips the matched
        # sequence and reports a bare "stop", so the response could not name it.
        stop = [s for s in request.stop_sequences or [] if s]
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "truncate": False,
        "shift": False,
        "keep_alive": keep_alive,
        "options": options,
    }
    if tools:
        payload["tools"] = tools
    if think:
        payload["think"] = True
    return Upstream(payload, [t["function"]["name"] for t in tools], stop)


def wants_thinking(request: CountTokensRequest) -> bool:
    thinking = request.thinking or {}
    return thinking.get("type") in ("enabled", "adaptive")


def _assistant_message(
    blocks: list[Block], where: str, tool_names: dict[str, str]
) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = block_type(block, f"{where}.{j}")
        if kind == "tool_use":
            call_id = required(block, "id", str, f"{where}.{j}")
            name = required(block, "name", str, f"{where}.{j}")
            arguments = block.get("input") or {}
            if not isinstance(arguments, dict):
                raise InvalidRequestError(f"{where}.{j}.input: must be an object")
            tool_names[call_id] = name
            calls.append({"id": call_id, "function": {"name": name, "arguments": arguments}})
        elif kind not in ("thinking", "redacted_thinking"):
            text = block_text(block, f"{where}.{j}")
            if text:
                texts.append(text)
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts)}
    if calls:
        message["tool_calls"] = calls
    return message


def _user_messages(
    blocks: list[Block], where: str, tool_names: dict[str, str]
) -> list[dict[str, Any]]:
    """Tool results become `tool` messages; the rest one user message, after them."""
    turns: list[dict[str, Any]] = []
    texts: list[str] = []
    images: list[str] = []
    for j, block in enumerate(blocks):
        kind = block_type(block, f"{where}.{j}")
        if kind == "tool_result":
            turns.append(_tool_message(block, f"{where}.{j}", tool_names))
        elif kind == "image":
            images.append(image_data(block, f"{where}.{j}"))
        else:
            text = block_text(block, f"{where}.{j}")
            if text:
                texts.append(text)
    if texts or images:
        user: dict[str, Any] = {"role": "user", "content": "\n\n".join(texts)}
        if images:
            user["images"] = images
        turns.append(user)
    return turns


def _tool_message(block: Block, where: str, tool_names: dict[str, str]) -> dict[str, Any]:
    call_id = required(block, "tool_use_id", str, where)
    content = block.get("content")
    if content is None:
        content = ""
    images: list[str] = []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for k, inner in enumerate(content):
            if block_type(inner, f"{where}.content.{k}") == "image":
                images.append(image_data(inner, f"{where}.content.{k}"))
            else:
                parts.append(block_text(inner, f"{where}.content.{k}") or "")
        text = "\n\n".join(p for p in parts if p)
    else:
        raise InvalidRequestError(f"{where}.content: must be a string or a list of blocks")
    if block.get("is_error") and not text.lower().startswith("error"):
        text = f"Error: {text}"
    message: dict[str, Any] = {"role": "tool", "content": text, "tool_call_id": call_id}
    if call_id in tool_names:
        message["tool_name"] = tool_names[call_id]
    if images:
        message["images"] = images
    return message


def _joined_text(blocks: list[Block], where: str) -> str:
    texts = (block_text(b, f"{where}.{j}") for j, b in enumerate(blocks))
    return "\n\n".join(t for t in texts if t)


def _append(out: list[dict[str, Any]], message: dict[str, Any]) -> None:
    """Merge consecutive user/assistant/system turns, as the Messages API allows them."""
    last = out[-1] if out else None
    if last is None or last["role"] != message["role"] or message["role"] == "tool":
        out.append(message)
        return
    if last.get("tool_calls") and message["content"]:
        out.append(message)  # keep text after a tool call in its own turn
        return
    last["content"] = "\n\n".join(c for c in (last["content"], message["content"]) if c)
    for key in ("images", "tool_calls"):
        if key in message:
            last[key] = last.get(key, []) + message[key]


def deepest_field(request: CountTokensRequest) -> tuple[str, int]:
    """The tool schema or tool_use input that nests deepest: (its path, its depth)."""
    fields = [
        (f"tools.{i}.input_schema", tool.input_schema) for i, tool in enumerate(request.tools or [])
    ]
    for i, message in enumerate(request.messages):
        if isinstance(message.content, list):
            fields += [
                (f"messages.{i}.content.{j}.input", block.get("input"))
                for j, block in enumerate(message.content)
                if isinstance(block, dict) and block.get("type") == "tool_use"
            ]
    depths = [(where, json_depth(value)) for where, value in fields]
    return max(depths, key=lambda pair: pair[1], default=("body", 0))
