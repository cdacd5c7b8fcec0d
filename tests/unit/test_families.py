"""proxy_app.families renders what Qwen's published chat templates render, byte for byte.

The templates are transcribed unchanged in tests/fixtures/templates (README there says where
from) and rendered here with jinja2 the way Hugging Face's transformers does (its `tojson`,
`add_generation_prompt`, `continue_final_message` for a prefill); proxy_app renders the same
conversation with its own code. The conversations are every captured Claude Code request,
translated by proxy_app, and hand-made ones for the corners Claude Code does not reach.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import pytest

from proxy_app.api.anthropic import MessagesRequest
from proxy_app.families import FAMILIES, Family, family_named, render
from proxy_app.translate import to_ollama_request

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURES = sorted(p.name for p in (FIXTURES / "claude_code").glob("*request*.json"))
TEMPLATES = {"qwen2.5": "qwen2.5-instruct.jinja", "qwen3-coder": "qwen3-coder.jinja"}


def published(family: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
    """The published template's rendering, as transformers' apply_chat_template makes it."""
    env = jinja2.Environment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    template = env.from_string((FIXTURES / "templates" / TEMPLATES[family]).read_text())
    prefill = bool(messages) and messages[-1]["role"] == "assistant"
    kwargs: dict[str, Any] = {"messages": messages, "add_generation_prompt": not prefill}
    if tools:
        kwargs["tools"] = tools
    out = template.render(**kwargs)
    if prefill:  # continue_final_message: cut after the final message's text
        final = messages[-1]["content"].strip()
        out = out[: out.rindex(final) + len(final)]
    return out


def payload_of(capture: str) -> dict[str, Any]:
    body = json.loads((FIXTURES / "claude_code" / capture).read_text())
    body.setdefault("max_tokens", 32000)
    request = MessagesRequest.model_validate(body)
    upstream = to_ollama_request(
        request, model="qwen2.5-coder:7b", num_ctx=32768, keep_alive="30m", think=False
    )
    return upstream.payload


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("capture", CAPTURES)
def test_captured_claude_code_requests_render_as_published(family: str, capture: str) -> None:
    payload = payload_of(capture)
    messages, tools = payload["messages"], payload.get("tools") or []
    assert render(FAMILIES[family], messages, tools) == published(family, messages, tools)


CALL = {"function": {"name": "Write", "arguments": {"file_path": "/tmp/a.txt", "content": "hi\n"}}}
SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "  Where.  "},
        "mode": {"type": ["string", "null"], "enum": ["r", "w"], "default": None},
        "flags": {"type": "object", "properties": {"x": {"type": "boolean"}}, "required": ["x"]},
        "n": {"type": "integer", "minimum": 1.5, "exclusiveMinimum": True},
    },
    "required": ["path"],
    "additionalProperties": False,
    "$schema": "http://json-schema.org/draft-07/schema#",
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "Write", "description": " Writes. ", "parameters": SCHEMA},
    }
]
CONVERSATIONS = {
    "text and calls in one turn, two results": [
        {"role": "system", "content": "You are Claude Code."},
        {"role": "user", "content": "make a file"},
        {"role": "assistant", "content": "I'll create the file.", "tool_calls": [CALL, CALL]},
        {"role": "tool", "content": "written"},
        {"role": "tool", "content": "written again"},
        {"role": "user", "content": "thanks"},
    ],
    "a system message mid-conversation stays there": [
        {"role": "system", "content": "top"},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "<env>cwd: /w</env>"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ],
    "no system message": [{"role": "user", "content": "hi"}],
    "calls without text, results last": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": "done"},
    ],
    "a prefill": [
        {"role": "user", "content": "say it"},
        {"role": "assistant", "content": "The answer is"},
    ],
    "non-ASCII and unusual argument types": [
        {"role": "user", "content": "héllo ✓"},
        {
            "role": "assistant",
            "content": "  ok  ",
            "tool_calls": [
                {
                    "function": {
                        "name": "Write",
                        "arguments": {
                            "n": 3,
                            "flag": True,
                            "none": None,
                            "list": [1, "é"],
                            "map": {"a": 1.5},
                        },
                    }
                }
            ],
        },
        {"role": "tool", "content": "ok"},
    ],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("with_tools", [True, False])
@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_conversations_render_as_published(family: str, with_tools: bool, name: str) -> None:
    messages = CONVERSATIONS[name]
    tools = TOOLS if with_tools else []
    assert render(FAMILIES[family], messages, tools) == published(family, messages, tools)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tool_definitions_are_never_go_struct_text(family: str) -> None:
    prompt = render(FAMILIES[family], CONVERSATIONS["no system message"], TOOLS)
    assert "<nil>" not in prompt and "map[" not in prompt
    if family == "qwen2.5":
        listed = prompt.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
        assert json.loads(listed) == TOOLS[0]


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("qwen2.5-coder:7b", "qwen2.5"),
        ("qwen2.5:14b", "qwen2.5"),
        ("Qwen2.5-Coder:1.5b", "qwen2.5"),
        ("qwen3-coder:30b", "qwen3-coder"),
        ("hf.co/x/qwen3-coder-flash:q4", "qwen3-coder"),
        ("llama3.1:8b", None),
        ("qwen3:8b", None),
    ],
)
def test_family_named(model: str, family: str | None) -> None:
    found: Family | None = family_named(model)
    assert (found.name if found else None) == family
