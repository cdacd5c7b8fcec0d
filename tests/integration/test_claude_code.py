"""The real Claude Code CLI (pinned in package.json) → proxy_app → the Ollama double."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleet import claude_code, hostdata
from ollama_double.server import ERR_QUEUE_FULL, OllamaDouble, Reply, native_answer, raw_prompt_ids
from tests.claude_code.cli import CLAUDE_BIN, run_claude
from tests.conftest import API_KEY, LiveProxy

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
    prompt = sent["prompt"]  # qwen2.5-coder: its published template, rendered by proxy_app
    assert sent["raw"] is True and prompt.startswith("<|im_start|>system\n")
    first_user = prompt.index("<|im_start|>user\n")
    assert "<|im_start|>system\n" in prompt[first_user:]  # its mid-conversation system turn
    assert "x-anthropic-billing-header" not in prompt
    assert set(tool_names(prompt)) >= {"Bash", "Read", "Write", "Edit"}


def tool_names(prompt: str) -> list[str]:
    """The tools a Qwen2.5 prompt lists, one JSON object a line (each must parse)."""
    listed = prompt.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    return [json.loads(line)["function"]["name"] for line in listed.splitlines()]


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
    first, follow_up = (body["prompt"] for body in double.chat_requests[:2])
    assert '<tool_call>\n{"name": "Write", "arguments": {"file_path": ' in follow_up
    assert "<|im_start|>user\n<tool_response>\nFile created successfully" in follow_up
    # the next turn re-reads nothing: it begins with this turn's prompt, then (when the model
    # wrote the call in its own format) with its answer
    assert follow_up.startswith(first)
    if style == "structured":
        assert follow_up.startswith(first + native_answer("qwen2.5-coder:7b", "", [call]))


def test_overflow_makes_claude_code_compact_and_finish(
    make_proxy: Any, double: OllamaDouble, tmp_path: Path
) -> None:
    """Two file reads overflow a 26k window less the 4096-token answer reserve: proxy_app's
    400 "prompt is too long" makes Claude Code compact (a summary request that fits), then
    carry on and print the answer. Every count is exact: the prompts forwarded are the ones
    Ollama (the double, same renderer and vocabulary) counts at or under the limit."""
    proxy = make_proxy(num_ctx=26000)
    limit = 26000 - 4096
    measured: list[tuple[bool, int]] = []  # (a /v1/messages request?, its tokens)
    real_measure = proxy.services.counter.measure

    def spy(model: str, profile: Any, payload: dict[str, Any]) -> Any:
        result = real_measure(model, profile, payload)
        measured.append(("num_predict" in payload["options"], result.tokens))
        return result

    proxy.services.counter.measure = spy
    reads = []
    for name, words in [("a.txt", "lorem ipsum dolor sit amet "), ("b.txt", "sed do eiusmod ")]:
        (tmp_path / name).write_text((words * 8 + "\n") * 500)
        reads.append({"name": "Read", "arguments": {"file_path": str(tmp_path / name)}})
    summary = "<analysis>read two files</analysis>\n<summary>Both files hold filler text.</summary>"
    double.script(
        Reply("", tool_calls=[reads[0]]),
        Reply("", tool_calls=[reads[1]]),
        Reply(summary),
        *[Reply("Both files are filler text.")] * 3,
    )
    done = run_claude(
        "read a.txt and b.txt",
        proxy.url,
        API_KEY,
        str(tmp_path),
        extra_env={
            "ANTHROPIC_MODEL": "qwen2.5-coder:7b",
            "CLAUDE_CODE_FILE_READ_MAX_OUTPUT_TOKENS": "6000",
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Both files are filler text." in done.stdout
    asked = [tokens for is_message, tokens in measured if is_message]
    sent_bodies = double.chat_requests
    forwarded = [len(raw_prompt_ids(b["model"], b["prompt"])) for b in sent_bodies]
    assert forwarded == [tokens for tokens in asked if tokens <= limit]
    refused = [tokens for tokens in asked if tokens > limit]
    assert refused and all(tokens <= 26000 for tokens in refused)  # it fit, but left no room
    statuses = proxy.app.state.metrics.requests
    assert statuses[("/v1/messages", 400)] >= 1  # the overflow was refused, never truncated
    sent = [json.dumps(body) for body in double.chat_requests]
    assert any("Both files hold filler text." in body for body in sent)  # the compacted history


def test_claude_code_retries_when_ollama_is_busy(
    proxy: LiveProxy, double: OllamaDouble, tmp_path: Path
) -> None:
    """Ollama's 503 (queue full) reaches Claude Code as HTTP 529 `overloaded_error` with
    `retry-after` (the stream waits for Ollama's status), which it retries; the second attempt
    is answered."""
    double.script(Reply.http_error(503, ERR_QUEUE_FULL), Reply("recovered after a retry"))
    done = run_claude("hi", proxy.url, API_KEY, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "recovered after a retry" in done.stdout
    assert len(double.chat_requests) == 2
    assert proxy.app.state.metrics.upstream_errors["overloaded_error"] == 1
    assert proxy.app.state.metrics.requests[("/v1/messages", 529)] == 1


@pytest.mark.parametrize("shape", ["well_formed", "no_function_close", "parameters_after_function"])
def test_qwen3_coder_xml_calls_drive_a_write_and_bash_loop(
    proxy: LiveProxy, double: OllamaDouble, tmp_path: Path, shape: str
) -> None:
    """qwen3-coder's calls arrive as XML-style text (Ollama's parser missed them): proxy_app
    turns them into tool_use blocks, and Claude Code writes the file and runs the command."""
    double.add_model("qwen3-coder:30b")
    target, copy = tmp_path / "hello.txt", tmp_path / "copy.txt"
    write = {"name": "Write", "arguments": {"file_path": str(target), "content": "from qwen3\n"}}
    bash = {"name": "Bash", "arguments": {"command": f"cp {target} {copy}", "timeout": 60000}}
    double.script(
        Reply.qwen3_coder([write], text="Writing the file.\n", shape=shape),
        Reply.qwen3_coder([bash], shape=shape),
        Reply("Wrote hello.txt and copied it."),
    )
    done = run_claude(
        "create hello.txt and copy it",
        proxy.url,
        API_KEY,
        str(tmp_path),
        extra_env={"ANTHROPIC_MODEL": "qwen3-coder:30b"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert target.read_text() == "from qwen3\n"
    assert copy.read_text() == "from qwen3\n"
    assert "Wrote hello.txt and copied it." in done.stdout
    follow_up = double.chat_requests[-1]["prompt"]  # Qwen3-Coder's template: calls as XML
    assert follow_up.count("<tool_response>\n") == 2
    assert follow_up.index("<function=Write>\n") < follow_up.index("<function=Bash>\n")


def test_the_printed_environment_runs_claude_code_without_a_warning(
    proxy: LiveProxy, double: OllamaDouble, tmp_path: Path
) -> None:
    """Exactly the lines `python -m fleet.tunnel` prints (key file referenced, not inlined), as
    a shell evaluates them, plus HOME and PATH: the pinned CLI answers and stderr stays empty —
    no `[claude-code:unrecognized_model]`, no CLAUDE_CODE_AUTO_COMPACT_WINDOW warning."""
    key_file = tmp_path / "proxy_api_key"
    key_file.write_text(API_KEY + "\n")
    port = int(proxy.url.rsplit(":", 1)[1])
    printed = claude_code.render(
        ["ssh"], claude_code.claude_env(hostdata.role_defaults(), port, key_file)
    )
    assert API_KEY not in printed
    env = claude_code.parse_exports(printed)
    home = tmp_path / "home"
    home.mkdir()
    env |= {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    double.script(Reply("Hello from the printed environment."))
    done = subprocess.run(
        [CLAUDE_BIN, "-p", "--", "say hi"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Hello from the printed environment." in done.stdout
    assert done.stderr == ""
    assert double.chat_requests[0]["model"] == "qwen2.5-coder:7b"  # a claude-* id, mapped
