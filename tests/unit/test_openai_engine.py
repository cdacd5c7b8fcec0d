"""The OpenAI-compatible engine's pure parts: the conversation as chat messages (with the tools
fallback), the answer's events as chunks, the completion body, the settings."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from proxy_app.config import Settings
from proxy_app.engines.chat_messages import chat_messages
from proxy_app.engines.openai import _chunks
from proxy_app.errors import UpstreamError
from proxy_app.families.qwen25 import QWEN25
from proxy_app.plan import prompt_limit

TOOLS = [
    {
        "type": "function",
        "function": {"name": "Bash", "parameters": {"type": "object", "properties": {}}},
    }
]
CALL = {"function": {"name": "Bash", "arguments": {"command": "ls"}}}
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "list files"},
    {"role": "assistant", "content": "Sure.", "tool_calls": [CALL, CALL]},
    {"role": "tool", "content": "a.txt"},
    {"role": "tool", "content": "b.txt"},
    {"role": "user", "content": "thanks"},
]


def test_a_template_without_tools_gets_them_in_the_system_turn() -> None:
    out = chat_messages(CONVERSATION, TOOLS, template_has_tools=False)
    assert out[0] == {"role": "system", "content": "Be brief.\n\n" + QWEN25.tools(TOOLS)}
    call = '<tool_call>\n{"name": "Bash", "arguments": {"command": "ls"}}\n</tool_call>'
    assert out[2] == {"role": "assistant", "content": f"Sure.\n{call}\n{call}"}
    results = "<tool_response>\na.txt\n</tool_response>\n<tool_response>\nb.txt\n</tool_response>"
    assert out[3] == {"role": "user", "content": results}  # consecutive results: one turn
    assert out[4] == {"role": "user", "content": "thanks"}
    assert len(out) == 5


def test_without_a_system_turn_the_tools_make_one() -> None:
    out = chat_messages(CONVERSATION[1:2], TOOLS, template_has_tools=False)
    assert out == [
        {"role": "system", "content": QWEN25.tools(TOOLS)},
        {"role": "user", "content": "list files"},
    ]


def test_a_template_with_tools_gets_openais_fields() -> None:
    out = chat_messages(CONVERSATION, TOOLS, template_has_tools=True)
    assert out[0] == {"role": "system", "content": "Be brief."}
    calls = out[2]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["Bash", "Bash"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"command": "ls"}
    assert out[3] == {"role": "tool", "content": "a.txt"}


def test_no_tools_means_no_fallback() -> None:
    plain = [{"role": "user", "content": "hi"}]
    assert chat_messages(plain, [], template_has_tools=False) == plain


def _read(lines: list[str]) -> list[dict[str, Any]]:
    body = "\n\n".join(lines).encode()
    response = httpx.Response(200, content=body)

    async def collect() -> list[dict[str, Any]]:
        return [chunk async for chunk in _chunks(response)]

    return asyncio.run(collect())


def _event(text: str, reason: str | None = None, usage: dict[str, int] | None = None) -> str:
    event: dict[str, Any] = {"choices": [{"text": text, "finish_reason": reason}]}
    if usage is not None:
        event["usage"] = usage
    return "data: " + json.dumps(event)


def test_events_become_chunks_and_one_final_chunk() -> None:
    usage = {"prompt_tokens": 11, "completion_tokens": 2}
    chunks = _read([_event("Hel"), _event("lo", "length", usage), "data: [DONE]"])
    assert [c["message"]["content"] for c in chunks] == ["Hel", "lo", ""]
    assert chunks[-1] == {
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "length",
        "prompt_eval_count": 11,
        "eval_count": 2,
    }


def test_usage_in_a_chunk_of_its_own_counts_too() -> None:
    """vLLM sends the finish reason, then `usage` with empty `choices`."""
    usage = {"prompt_tokens": 5, "completion_tokens": 1}
    lines = [_event("x", "stop"), "data: " + json.dumps({"choices": [], "usage": usage})]
    chunks = _read([*lines, "data: [DONE]"])
    assert chunks[-1]["done_reason"] == "stop" and chunks[-1]["prompt_eval_count"] == 5


def test_a_stream_cut_before_done_has_no_final_chunk() -> None:
    assert [c["done"] for c in _read([_event("a"), _event("b")])] == [False, False]


def test_an_error_event_raises() -> None:
    error = json.dumps({"error": {"code": 500, "message": "slot failed"}})
    with pytest.raises(UpstreamError, match="slot failed"):
        _read([_event("a"), f"data: {error}"])


@pytest.mark.parametrize(
    ("window", "reserve", "max_tokens", "limit"),
    [(32768, 4096, 32000, 28672), (32768, 4096, 100, 32668), (512, 4096, 32000, 256)],
)
def test_the_reserve_is_at_most_half_the_window(
    window: int, reserve: int, max_tokens: int, limit: int
) -> None:
    assert prompt_limit(window, reserve, max_tokens) == limit


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:11434"),
        ({"ollama_url": "http://gpu:11434"}, "http://gpu:11434"),
        ({"engine": "openai"}, "http://127.0.0.1:8080"),
        ({"engine": "openai", "ollama_url": "http://gpu:11434"}, "http://127.0.0.1:8080"),
        ({"engine": "openai", "engine_url": "http://gpu:9000"}, "http://gpu:9000"),
        ({"ollama_url": "http://old:1", "engine_url": "http://new:2"}, "http://new:2"),
    ],
)
def test_the_engine_url_and_its_older_name(env: dict[str, str], url: str) -> None:
    assert Settings(**env).engine_url == url
