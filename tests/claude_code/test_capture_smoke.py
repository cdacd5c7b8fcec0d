"""Smoke test of the Claude Code harness itself: capture server + run_claude helper."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .capture_server import TEXT_ANSWER, CaptureServer
from .cli import run_claude

# No skip when the CLI is missing: `make test` installs it (npm ci), and a feature is only
# done when Claude Code uses it.
pytestmark = pytest.mark.claude_code

TOKEN = "tok-smoke-secret"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


def _server(tmp_path: Path, mode: str, write_path: str | None = None) -> CaptureServer:
    return CaptureServer(str(tmp_path / "log"), 0, mode, write_path).start_background()


@pytest.fixture
def text_server(tmp_path: Path) -> Iterator[CaptureServer]:
    server = _server(tmp_path, "text")
    yield server
    server.stop()


def _posts(server: CaptureServer, route: str) -> list[dict]:
    return [
        r for r in server.records() if r["method"] == "POST" and r["path"].split("?")[0] == route
    ]


def test_say_hi(text_server: CaptureServer, work: Path) -> None:
    proc = run_claude("say hi", text_server.base_url, TOKEN, str(work), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == TEXT_ANSWER

    msgs = _posts(text_server, "/v1/messages")
    assert msgs, [r["path"] for r in text_server.records()]
    first = msgs[0]
    assert first["path"] == "/v1/messages?beta=true"
    assert first["headers"]["Authorization"] == f"Bearer {TOKEN}"
    body = first["body"]
    assert body["stream"] is True
    assert body["messages"][0]["role"] == "user"
    assert any(t["name"] == "Write" for t in body["tools"])


def test_model_env_is_sent(text_server: CaptureServer, work: Path) -> None:
    env = {"ANTHROPIC_MODEL": "qwen2.5-coder:7b"}
    proc = run_claude("say hi", text_server.base_url, TOKEN, str(work), extra_env=env)
    assert proc.returncode == 0, proc.stderr
    assert [m["body"]["model"] for m in _posts(text_server, "/v1/messages")] == ["qwen2.5-coder:7b"]


def test_write_tool_round_trip(tmp_path: Path, work: Path) -> None:
    target = work / "hello.txt"
    server = _server(tmp_path, "tool", str(target))
    try:
        proc = run_claude("write hi to hello.txt", server.base_url, TOKEN, str(work))
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == TEXT_ANSWER
    assert target.read_text() == "hi"  # ran without a permission prompt

    msgs = _posts(server, "/v1/messages")
    assert len(msgs) == 2
    last = msgs[1]["body"]["messages"][-1]
    assert last["role"] == "user"
    (result,) = last["content"]
    assert result["type"] == "tool_result"
    assert result.get("is_error") is not True
    tool_use = msgs[1]["body"]["messages"][-2]["content"][0]
    assert tool_use["type"] == "tool_use" and result["tool_use_id"] == tool_use["id"]
    assert os.path.isabs(tool_use["input"]["file_path"])
