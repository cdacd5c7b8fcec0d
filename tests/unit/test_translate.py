"""Translation of real Claude Code requests (tests/fixtures/claude_code) and of each block kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxy_app.api.anthropic import MessagesRequest
from proxy_app.errors import InvalidRequestError
from proxy_app.translate import to_ollama_request

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude_code"
CAPTURES = [
    "first_request",
    "first_request_qwen",
    "tool_result_request",
    "compaction_request",
    "after_compaction_request",
]


def translate(body: dict[str, Any], think: bool = False) -> dict[str, Any]:
    request = MessagesRequest.model_validate(body)
    return to_ollama_request(
        request, model="qwen2.5-coder:7b", num_ctx=32768, keep_alive="30m", think=think
    ).payload


@pytest.mark.parametrize("name", CAPTURES)
def test_claude_code_requests_translate(name: str) -> None:
    body = json.loads((FIXTURES / f"{name}.json").read_text())
    payload = translate(body)
    text = json.dumps(payload)
    assert "x-anthropic-billing-header" not in text
    assert "cache_control" not in text and "think" not in payload
    assert payload["options"]["num_ctx"] == 32768 and payload["truncate"] is False
    assert payload["messages"][0]["role"] == "system"
    offered = {tool["name"] for tool in body["tools"] if "input_schema" in tool}
    assert {t["function"]["name"] for t in payload["tools"]} == offered
    mid_system = [m for m in body["messages"] if m["role"] == "system"]
    assert len([m for m in payload["messages"][1:] if m["role"] == "system"]) >= len(mid_system) > 0


def test_tool_result_request_maps_ids_and_names() -> None:
    body = json.loads((FIXTURES / "tool_result_request.json").read_text())
    messages = translate(body)["messages"]
    call = next(m for m in messages if m.get("tool_calls"))["tool_calls"][0]
    result = next(m for m in messages if m["role"] == "tool")
    assert result["tool_call_id"] == call["id"] and result["tool_name"] == call["function"]["name"]
    assert "File created successfully" in result["content"]


def test_blocks_of_every_kind() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {
                        "type": "document",
                        "title": "notes",
                        "source": {"type": "text", "data": "abc"},
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBER",
                        },
                    },
                    {"type": "brand_new_block", "whatever": 1},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "secret", "signature": "s"},
                    {"type": "redacted_thinking", "data": "zz"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"p": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "is_error": True,
                        "content": [{"type": "text", "text": "no such file"}],
                    },
                    {"type": "text", "text": "try again"},
                ],
            },
            {"role": "system", "content": "<total_tokens>900 left</total_tokens>"},
            {"role": "user", "content": "go"},
        ],
    }
    messages = translate(body)["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    user = messages[1]
    assert user["images"] == ["iVBOR"]
    assert "notes\n\nabc" in user["content"] and "application/pdf" in user["content"]
    assistant = messages[2]
    assert assistant["content"] == "calling" and "secret" not in json.dumps(messages)
    assert messages[3] == {
        "role": "tool",
        "content": "Error: no such file",
        "tool_call_id": "toolu_1",
        "tool_name": "Read",
    }
    assert messages[4] == {"role": "user", "content": "try again"}
    assert messages[5]["role"] == "system" and messages[6] == {"role": "user", "content": "go"}


def test_unknown_tool_choice_target_is_an_error() -> None:
    with pytest.raises(InvalidRequestError, match="tool_choice.name"):
        translate(
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "A", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "tool", "name": "B"},
            }
        )
