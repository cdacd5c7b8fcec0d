"""The real Claude Code CLI (pinned in package.json) → proxy_app → the Ollama double."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.claude_code.cli import run_claude
from tests.conftest import API_KEY, LiveProxy
from tests.ollama_double.server import OllamaDouble, Reply

pytestmark = pytest.mark.claude_code


def test_plain_answer_is_printed(proxy: LiveProxy, double: OllamaDouble, tmp_path: Path) -> None:
    double.script(Reply("Hello from the self-hosted model."))
    done = run_claude("say hi", proxy.url, API_KEY, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "Hello from the self-hosted model." in done.stdout
    sent = double.chat_requests[0]
    assert sent["model"] == "qwen2.5-coder:7b"
    assert "think" not in sent  # Claude Code asks for adaptive thinking; qwen2.5-coder can't
    assert sent["options"]["num_ctx"] == 32768 and sent["truncate"] is False
    roles = [m["role"] for m in sent["messages"]]
    assert roles[0] == "system" and "system" in roles[1:]  # its mid-conversation system turn
    assert "x-anthropic-billing-header" not in json.dumps(sent)
    assert {t["function"]["name"] for t in sent["tools"]} >= {"Bash", "Read", "Write", "Edit"}


def _write_call(target: Path) -> dict[str, object]:
    return {"name": "Write", "arguments": {"file_path": str(target), "content": "from qwen\n"}}


@pytest.mark.parametrize("style", ["structured", "bare-json"])
def test_tool_loop_writes_a_file(
    proxy: LiveProxy, double: OllamaDouble, tmp_path: Path, style: str
) -> None:
    target = tmp_path / "hello.txt"
    call = _write_call(target)
    first = Reply("", tool_calls=[call]) if style == "structured" else Reply(json.dumps(call))
    double.script(first, Reply("I wrote hello.txt for you."))
    done = run_claude(
        "create hello.txt",
        proxy.url,
        API_KEY,
        str(tmp_path),
        extra_env={"ANTHROPIC_MODEL": "qwen2.5-coder:7b"},
    )
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "from qwen\n"
    assert "I wrote hello.txt for you." in done.stdout
    follow_up = double.chat_requests[1]["messages"]
    tool_turns = [m for m in follow_up if m["role"] == "tool"]
    assert tool_turns and tool_turns[-1]["tool_name"] == "Write"
    assert follow_up[-2]["tool_calls"][0]["function"]["name"] == "Write"
