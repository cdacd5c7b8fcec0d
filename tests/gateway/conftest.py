"""A live gateway on loopback: HAProxy (fleet/haproxy.py) in front of two proxy_app hosts.

Each host is proxy_app (python -m proxy_app, a real process, so a test can kill it) against its
own Ollama API double, on its own loopback port, standing in for a host's SSH tunnel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.ports import free_port
from fleet.haproxy import Backend, GatewayConfig, HAProxy, host_status, read_stats, write_config
from ollama_double.server import OllamaDouble

REPO = Path(__file__).resolve().parents[2]
API_KEY = "sk-gateway-test"
SESSION_HEADER = "X-Claude-Code-Session-Id"
MODEL = "qwen2.5-coder:7b"
# Room for the long-session bodies the retry test sends (~300 KB, ~100k estimated tokens).
CONTEXT = 262144


@dataclass
class Host:
    """proxy_app in its own process on a fixed loopback port, against its own double."""

    name: str
    port: int
    double: OllamaDouble
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Host:
        env = {
            **os.environ,
            "PROXY_PORT": str(self.port),
            "PROXY_OLLAMA_URL": self.double.url,
            "PROXY_API_KEYS": API_KEY,
            "PROXY_PING_INTERVAL": "0.2",
            "PROXY_LOG_LEVEL": "warning",
            "PROXY_NUM_CTX": str(CONTEXT),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy_app"], cwd=REPO, env=env, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"proxy_app {self.name} exited at start"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"proxy_app {self.name} did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def chats(self) -> list[Any]:
        return self.double.chat_requests


@dataclass
class Gateway:
    cfg: GatewayConfig
    hosts: dict[str, Host]
    haproxy: HAProxy
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.cfg.port}"

    def status(self) -> dict[str, dict[str, Any]]:
        return {h["name"]: h for h in host_status(read_stats(self.cfg.stats_port))}

    def queued(self) -> int:
        """Requests waiting in HAProxy's queues (backends and servers)."""
        rows = read_stats(self.cfg.stats_port)
        return sum(int(r["qcur"] or 0) for r in rows if r["svname"] == "BACKEND")

    def wait_state(self, name: str, state: str, timeout: float = 20) -> float:
        """Seconds until HAProxy reports host ``name`` in ``state`` (UP or DOWN)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.status()[name].get("state") == state:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"{name} not {state} after {timeout} s: {self.status()[name]}")

    def ask(self, text: str, session: str | None = None, **body: Any) -> httpx.Response:
        return self.client.post("/v1/messages", json=message(text, **body),
                                headers=headers(session))

    def host_of(self, text: str) -> str:
        """The host whose double received a prompt containing ``text``."""
        found = [name for name, host in self.hosts.items()
                 if any(text in (c.get("prompt") or str(c["messages"])) for c in host.chats)]
        assert len(found) == 1, f"{text!r} reached {found}"
        return found[0]


def message(text: str, **body: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": text}], **body}


def headers(session: str | None = None) -> dict[str, str]:
    out = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    if session is not None:
        out[SESSION_HEADER] = session
    return out


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Start HAProxy (GatewayConfig fields as keywords) before hosts `host-a` and `host-b`."""
    started: list[tuple[Gateway, list[OllamaDouble]]] = []

    def make(**overrides: Any) -> Gateway:
        doubles = [
            OllamaDouble(models=[MODEL], default_num_ctx=CONTEXT, context_lengths={MODEL: CONTEXT})
            for _ in range(2)
        ]
        hosts = {name: Host(name, free_port(), double.start())
                 for name, double in zip(("host-a", "host-b"), doubles, strict=True)}
        cfg = GatewayConfig(hosts=[Backend(h.name, h.port) for h in hosts.values()],
                            port=free_port(), stats_port=free_port(), **overrides)
        gw = Gateway(cfg, hosts, HAProxy(write_config(cfg, tmp_path), cfg))
        started.append((gw, doubles))
        for host in hosts.values():
            host.start()
        gw.haproxy.start()
        for name in hosts:
            gw.wait_state(name, "UP")
        return gw

    yield make
    for gw, doubles in started:
        gw.client.close()
        gw.haproxy.stop()
        for host in gw.hosts.values():
            host.stop()
        for double in doubles:
            double.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    """The gateway with its default config, both hosts UP."""
    return make_gateway()
