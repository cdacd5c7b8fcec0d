"""Claude Code on this machine -> the tunnel helper's ssh tunnel -> proxy_app on the host.

The tunnel is opened by `python -m fleet.tunnel --open` on a free local port, and Claude
Code gets exactly the environment the helper prints. On the sandbox, Ollama is the API double:
its replies are scripted through the double's admin endpoint ``/api/_double/script`` (over ssh,
with curl on the host); a real engine (a real Ollama, or llama-server with SmolLM2 on a llamacpp
sandbox host) has no such endpoint, so there the answer is only checked to be the model's own
words and the tool loop is skipped.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testinfra.host import Host

from devkit.ports import free_port
from fleet.claude_code import parse_exports
from fleet.errors import TunnelError
from fleet.hostdata import REPO
from fleet.ssh_tunnel import wait_for_port
from tests.claude_code.cli import run_claude
from tests.infra.conftest import InfraHost, Target

pytestmark = [pytest.mark.infra, pytest.mark.claude_code]
SCRIPT_PATH = "/api/_double/script"


@pytest.fixture(scope="module")
def tunnel(infra_host: InfraHost, infra_target: Target) -> Iterator[dict[str, str]]:
    """Open the tunnel with the helper; yield the Claude Code environment it printed."""
    if infra_target.inventory is None:
        pytest.skip("the tunnel helper needs an inventory (not available with --hosts)")
    port = free_port()
    argv = [sys.executable, "-m", "fleet.tunnel", "--inventory", str(infra_target.inventory)]
    argv += ["--host", str(infra_host.name), "--local-port", str(port), "--open"]
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env={**os.environ, **infra_target.env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        try:
            wait_for_port(port, proc, timeout=90)
        except TunnelError as exc:
            proc.kill()
            pytest.fail(f"{exc} {proc.stderr.read().decode().strip()}", pytrace=False)
        # Everything is printed (and flushed) before ssh starts, so it is all in the pipe now.
        os.set_blocking(proc.stdout.fileno(), False)
        env = parse_exports(os.read(proc.stdout.fileno(), 1 << 16).decode())
        assert env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
        yield env
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the helper closes its ssh, then exits
            proc.wait(timeout=15)
        proc.stdout.close()
        proc.stderr.close()


def _script(host: Host, data: dict[str, Any], *replies: dict[str, Any]) -> int | None:
    """Queue the double's next replies; the number now pending, None if it is not the double."""
    url = f"http://127.0.0.1:{data['ollama_port']}{SCRIPT_PATH}"
    body = shlex.quote(json.dumps({"replies": list(replies)}))
    out = host.run(
        f"curl -sS -w '\\n%{{http_code}}' --max-time 10 "
        f"-H 'content-type: application/json' -d {body} {url}"
    ).stdout
    answer, _, status = out.strip().rpartition("\n")
    return int(json.loads(answer)["queued"]) if status == "200" else None


def _drain(host: Host, data: dict[str, Any]) -> None:
    """Use up replies left queued (the double has no "clear"): one /api/chat call each."""
    url = f"http://127.0.0.1:{data['ollama_port']}/api/chat"
    body = {"model": data["ollama_models"][0], "messages": [{"role": "user", "content": "-"}]}
    command = f"curl -fsS -o /dev/null --max-time 10 -d {shlex.quote(json.dumps(body))} {url}"
    for _ in range(_script(host, data) or 0):
        host.run(command)


@pytest.fixture
def scripted(host: Host, host_data: dict[str, Any]) -> Iterator[bool]:
    """Whether replies can be scripted; no reply is left queued before or after the test."""
    _drain(host, host_data)
    yield _script(host, host_data) is not None
    _drain(host, host_data)


def _claude(prompt: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base_url, token = env["ANTHROPIC_BASE_URL"], env["ANTHROPIC_AUTH_TOKEN"]
    # A real model on a CPU (llama-server with SmolLM2 on a llamacpp sandbox host) prefills
    # Claude Code's ~12k-token first request in about 60-100 s.
    return run_claude(prompt, base_url, token, str(cwd), extra_env=env, timeout=600)


def test_claude_code_prints_the_answer(
    tunnel: dict[str, str], host: Host, host_data: dict[str, Any], scripted: bool, tmp_path: Path
) -> None:
    answer = "Hello through the tunnel, from the self-hosted model."
    if scripted:
        _script(host, host_data, {"content": answer})
    # A real tiny model (SmolLM2 on a llamacpp host) may write until the window is full; its
    # answers are capped (Claude Code's own setting) to keep the test's time bounded.
    cap = {} if scripted else {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "48"}
    done = _claude("say hello", {**tunnel, **cap}, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    if scripted:
        assert answer in done.stdout
    else:  # a real model: its own words, whatever they are
        assert any(ch.isalpha() for ch in done.stdout), done.stdout


def test_claude_code_tool_loop_writes_a_local_file(
    tunnel: dict[str, str], host: Host, host_data: dict[str, Any], scripted: bool, tmp_path: Path
) -> None:
    target = tmp_path / "hello.txt"
    write = {"name": "Write", "arguments": {"file_path": str(target), "content": "via tunnel\n"}}
    # Should Claude Code compact after the tool result (extra calls: summary, then the
    # answer), the text reply is queued a few times; extras are answered by later calls.
    if not scripted:
        pytest.skip(f"the host's Ollama has no {SCRIPT_PATH} (not the double): no scripted tools")
    final = {"content": "I wrote hello.txt."}
    _script(host, host_data, {"content": "", "tool_calls": [write]}, *[final] * 4)
    done = _claude("create hello.txt", tunnel, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert target.read_text() == "via tunnel\n"  # written on this machine by Claude Code's tool
    assert "I wrote hello.txt." in done.stdout
