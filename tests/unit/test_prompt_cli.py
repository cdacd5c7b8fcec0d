"""`python -m proxy_app.prompt`: the prompt on stdout (and nothing else), its count on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from proxy_app import vocab
from proxy_app.families import FAMILIES, render
from tests.unit.test_families import payload_of

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = ROOT / "tests" / "fixtures" / "claude_code" / "tool_result_request.json"


def run(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "proxy_app.prompt", *args],
        input=stdin, capture_output=True, cwd=ROOT, check=False, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("model", "family", "vocabulary"),
    [("qwen2.5-coder:7b", "qwen2.5", "qwen2"), ("qwen3-coder:30b", "qwen3-coder", "qwen3")],
)
def test_prints_exactly_the_prompt_and_its_count(model: str, family: str, vocabulary: str) -> None:
    done = run("--model", model, stdin=CAPTURE.read_bytes())
    assert done.returncode == 0, done.stderr
    payload = payload_of(CAPTURE.name)
    expected = render(FAMILIES[family], payload["messages"], payload["tools"])
    assert done.stdout.decode() == expected
    encoding = vocab.vocabulary_for(vocabulary)
    assert encoding is not None
    tokens = vocab.count(encoding, expected)
    assert done.stderr.decode().startswith(f"{tokens} tokens ")


def test_the_default_model_is_the_deploys() -> None:
    done = run(stdin=CAPTURE.read_bytes())
    assert done.returncode == 0 and done.stdout.startswith(b"<|im_start|>system\n")
    assert b"qwen2.5-coder:7b" in done.stderr


def test_a_family_ollama_renders_is_exit_3() -> None:
    done = run("--model", "llama3.1:8b", stdin=CAPTURE.read_bytes())
    assert done.returncode == 3 and done.stdout == b""
    assert b"/api/chat" in done.stderr


def test_a_bad_body_is_exit_2_with_the_reason() -> None:
    done = run(stdin=json.dumps({"model": "m", "messages": "hi"}).encode())
    assert done.returncode == 2 and done.stdout == b""
    assert b"messages" in done.stderr
    assert run(stdin=b"{not json").returncode == 2
