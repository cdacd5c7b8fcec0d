"""fleet/probe.py: the SSH banner check, and /health + /metrics read through `ssh`.

`read_host` is run for real against a live proxy_app (on the Ollama double); only `ssh` is a
stand-in on PATH that runs the remote command locally through `sh -c`, as sshd would.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from fleet.probe import read_host, ssh_answers, ssh_argv
from ollama_double.server import OllamaDouble, Reply
from tests.conftest import API_KEY, LiveProxy

FAKE_SSH = """#!/bin/sh
# ssh [-o X|-p X|-i X]... user@host command...: run the command here, as the remote shell would.
while [ $# -gt 0 ]; do
  case "$1" in
    -o|-p|-i) shift 2 ;;
    -*) shift ;;
    *) shift; break ;;
  esac
done
exec sh -c "$*"
"""


@pytest.fixture
def banner_server() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield "127.0.0.1", server.getsockname()[1]
    server.close()


def test_ssh_answers_needs_the_banner(banner_server: tuple[str, int]) -> None:
    assert ssh_answers(*banner_server)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert not ssh_answers("127.0.0.1", port, timeout=1)


def test_ssh_argv() -> None:
    data = {
        "ssh_hostname": "203.0.113.7",
        "ssh_port": 40022,
        "ssh_user": "root",
        "ssh_key": "/k/id",
        "ssh_known_hosts_file": "/k/known_hosts",
    }
    argv = ssh_argv(data)
    assert argv[0] == "ssh" and argv[-1] == "root@203.0.113.7"
    assert argv[argv.index("-p") : argv.index("-p") + 2] == ["-p", "40022"]
    assert "UserKnownHostsFile=/k/known_hosts" in argv and "BatchMode=yes" in argv


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ssh = tmp_path / "bin" / "ssh"
    ssh.parent.mkdir()
    ssh.write_text(FAKE_SSH)
    ssh.chmod(ssh.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{ssh.parent}{os.pathsep}{os.environ['PATH']}")


def test_read_host_against_a_live_proxy(
    fake_ssh: None, proxy: LiveProxy, double: OllamaDouble
) -> None:
    double.script(Reply("hi", prompt_eval_count=40, eval_count=9))
    client = anthropic.Anthropic(base_url=proxy.url, api_key=API_KEY, max_retries=0)
    client.messages.create(
        model="claude-opus-5-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    data = {"ssh_hostname": "host", "ssh_port": 22, "proxy_port": proxy.settings.port}

    report = read_host(data)

    assert report.health == "healthy"
    assert (report.requests, report.input_tokens, report.output_tokens) == (1, 40, 9)
    assert report.by_class == {("opus", "input"): 40, ("opus", "output"): 9}


def test_read_host_with_proxy_down(fake_ssh: None) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    report = read_host({"ssh_hostname": "host", "ssh_port": 22, "proxy_port": port})
    assert report.health == "proxy_app not answering"
