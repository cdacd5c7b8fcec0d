"""Shared fixtures: a clean environment, the Ollama API double, and proxy_app served for real."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from devkit.ports import free_port
from ollama_double.server import OllamaDouble
from proxy_app.config import Settings
from proxy_app.main import create_app
from proxy_app.server import uvicorn_options

pytest_plugins = ["devkit.redis_tls", "tests.deployed"]

API_KEY = "sk-test-key"
SCRUBBED_PREFIXES = ("PROXY_", "ANTHROPIC_", "SSL_CERT", "REQUESTS_CA", "CURL_CA")
SCRUBBED = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer setting (PROXY_*, ANTHROPIC_*, proxies) leaks into a test."""
    for name in list(os.environ):
        if name.startswith(SCRUBBED_PREFIXES) or name in SCRUBBED:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def double() -> Iterator[OllamaDouble]:
    """The Ollama API double (ollama_double/), with qwen2.5-coder:7b pulled."""
    with OllamaDouble(models=["qwen2.5-coder:7b"], default_num_ctx=32768) as server:
        yield server


class LiveProxy:
    """proxy_app under a real uvicorn server in a thread, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
            lifespan="on",
            **uvicorn_options(settings),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{settings.port}"

    def start(self) -> LiveProxy:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("proxy_app did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def services(self) -> Any:
        return self.app.state.services


@pytest.fixture
def make_proxy(double: OllamaDouble) -> Iterator[Callable[..., LiveProxy]]:
    """Start proxy_app against the double; keyword arguments override settings."""
    started: list[LiveProxy] = []

    def make(**overrides: Any) -> LiveProxy:
        values: dict[str, Any] = {
            "ollama_url": double.url,
            "api_keys": [API_KEY],
            "port": free_port(),
            "ping_interval": 0.2,
        }
        values.update(overrides)
        proxy = LiveProxy(Settings(**values)).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def proxy(make_proxy: Callable[..., LiveProxy]) -> LiveProxy:
    return make_proxy()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something listens on (a stand-in for a port the user already uses)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])
