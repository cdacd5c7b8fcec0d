"""qwen3-coder's XML tool calls, written as text by the double's qwen3-coder mode, become
typed tool_use blocks through proxy_app (the official SDK as client), streamed and not."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from ollama_double.server import QWEN3_CODER_SHAPES, OllamaDouble, Reply
from tests.conftest import API_KEY, LiveProxy

BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "type": "object",
        "properties": {
            "command": {"type": "string"},
            "timeout": {"type": "number"},
            "run_in_background": {"type": "boolean"},
            "env": {"type": "object"},
            "args": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["command"],
    },
}
CALL = {
    "command": "ls -la /tmp",
    "timeout": 5000,
    "run_in_background": False,
    "env": {"LANG": "C"},
    "args": ["-l", "-a"],
}


def answer(proxy: LiveProxy, streamed: bool) -> Any:
    client = anthropic.Anthropic(base_url=proxy.url, api_key=API_KEY, max_retries=0)
    params: dict[str, Any] = {
        "model": "qwen3-coder:30b",
        "max_tokens": 256,
        "tools": [BASH],
        "messages": [{"role": "user", "content": "list /tmp"}],
    }
    if not streamed:
        return client.messages.create(**params)
    with client.messages.stream(**params) as stream:
        return stream.get_final_message()


@pytest.mark.parametrize("shape", QWEN3_CODER_SHAPES)
@pytest.mark.parametrize("streamed", [False, True], ids=["message", "stream"])
def test_xml_calls_become_typed_tool_use(
    proxy: LiveProxy, double: OllamaDouble, shape: str, streamed: bool
) -> None:
    double.add_model("qwen3-coder:30b")
    calls = [{"name": "Bash", "arguments": CALL}, {"name": "Bash", "arguments": {"command": "pwd"}}]
    double.script(Reply.qwen3_coder(calls, text="Listing it.\n\n", shape=shape, chunks=23))
    message = answer(proxy, streamed)
    used = [(block.name, block.input) for block in message.content if block.type == "tool_use"]
    assert used == [("Bash", CALL), ("Bash", {"command": "pwd"})]
    assert message.stop_reason == "tool_use"
    texts = [block.text for block in message.content if block.type == "text"]
    assert texts == ["Listing it."]
    assert proxy.app.state.metrics.recovered_tool_calls == 2


def test_xml_for_an_unknown_tool_stays_text(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.add_model("qwen3-coder:30b")
    written = "<tool_call>\n<function=Deploy>\n<parameter=env>\nprod\n</parameter>\n</function>\n"
    double.script(Reply(written + "</tool_call>", chunks=9))
    message = answer(proxy, streamed=True)
    assert message.stop_reason == "end_turn"
    assert [block.text for block in message.content] == [written + "</tool_call>"]
