"""Shared fixtures: a clean environment, the Ollama API double, a real engine (llama.cpp's
llama-server with SmolLM2), and proxy_app served for real in front of either.

A test (or module) marked `both_engines` runs twice: against the Ollama double (PROXY_ENGINE=
ollama) and against the real llama-server (PROXY_ENGINE=openai; the same weights answer to
`qwen2.5-coder:7b`, so proxy_app renders Qwen2.5's template as it does for Ollama). Such a test
asserts only what must hold on any engine; one that scripts the double runs on Ollama only."""

from __future__ import annotations

import inspect
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from devkit import llamacpp
from devkit.llama_server import SMOLLM2, LocalLlama, running_llama_server
from devkit.ports import free_port
from ollama_double.server import OllamaDouble
from proxy_app.config import Settings
from proxy_app.main import create_app
from proxy_app.server import uvicorn_options

pytest_plugins = ["devkit.redis_tls", "tests.deployed"]
ENGINES = ("ollama", "openai")
QWEN_ALIAS = "qwen2.5-coder:7b"  # a name whose family proxy_app renders

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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A `both_engines` test runs on each engine, unless it scripts the Ollama double itself
    (takes `double` as an argument): that one is about Ollama's API and runs on it only."""
    marked = metafunc.definition.get_closest_marker("both_engines") is not None
    scripts_the_double = "double" in inspect.signature(metafunc.function).parameters
    if marked and "engine_kind" in metafunc.fixturenames and not scripts_the_double:
        metafunc.parametrize("engine_kind", ENGINES, indirect=True)


@pytest.fixture
def engine_kind(request: pytest.FixtureRequest) -> str:
    """The engine proxy_app fronts: "ollama" (the double) unless the test is `both_engines`."""
    return str(getattr(request, "param", "ollama"))


def llama_server(context: int = 32768) -> Iterator[LocalLlama]:
    """llama-server (built once, cached) with SmolLM2, one slot of `context` tokens, answering
    to its own name and to `qwen2.5-coder:7b`; a build that cannot run here fails, said so."""
    try:
        with running_llama_server(aliases=(SMOLLM2, QWEN_ALIAS), context=context) as server:
            yield server
    except llamacpp.BuildError as exc:
        pytest.fail(f"llama-server could not be built: {exc}")


def openai_engine(server: LocalLlama, model: str) -> dict[str, Any]:
    """proxy_app's settings for `server` as its engine, `model` serving Claude's ids."""
    return {"engine": "openai", "engine_url": server.url, "default_model": model}


@pytest.fixture(scope="session")
def llama() -> Iterator[LocalLlama]:
    """A whole Claude Code request fits its 32,768 tokens."""
    yield from llama_server()


@pytest.fixture
def make_proxy(
    double: OllamaDouble, engine_kind: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., LiveProxy]]:
    """Start proxy_app against the double (or, for `both_engines` tests, also the real
    llama-server); keyword arguments override settings."""
    started: list[LiveProxy] = []
    engine: dict[str, Any] = {"ollama_url": double.url}
    if engine_kind == "openai":
        server = request.getfixturevalue("llama")
        engine = openai_engine(server, QWEN_ALIAS)

    def make(**overrides: Any) -> LiveProxy:
        values: dict[str, Any] = {
            **engine,
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
