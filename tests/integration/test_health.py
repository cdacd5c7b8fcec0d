"""/health: cheap and unauthenticated, from dependency checks run at most once a second;
HEAD answers 200; `?deep=1` checks now, behind the API key."""

from __future__ import annotations

import asyncio
import math
import time

import httpx

from ollama_double.server import OllamaDouble
from tests.conftest import API_KEY, LiveProxy

MODEL = "qwen2.5-coder:7b"


def test_head_health_is_200_without_a_key(proxy: LiveProxy) -> None:
    response = httpx.head(proxy.url + "/health")
    assert response.status_code == 200
    assert response.content == b""


def test_deep_health_needs_the_key_and_checks_now(proxy: LiveProxy, double: OllamaDouble) -> None:
    assert httpx.get(proxy.url + "/health").json()["status"] == "healthy"
    refused = httpx.get(proxy.url + "/health?deep=1")
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    before = len(double.requests_to("/api/version"))
    double.remove_model(MODEL)
    deep = httpx.get(proxy.url + "/health?deep=1", headers={"x-api-key": API_KEY})
    assert deep.json()["status"] == "degraded"
    assert len(double.requests_to("/api/version")) == before + 1


def test_plain_health_follows_the_dependencies_within_a_second(
    proxy: LiveProxy, double: OllamaDouble
) -> None:
    assert httpx.get(proxy.url + "/health").json()["status"] == "healthy"
    double.remove_model(MODEL)
    time.sleep(1.05)
    body = httpx.get(proxy.url + "/health").json()
    assert body["status"] == "degraded"
    assert body["components"]["model"]["status"] == "error"


async def flood(url: str, seconds: float, clients: int) -> list[int]:
    """`clients` keep-alive connections asking /health back to back for `seconds`."""
    statuses: list[int] = []
    deadline = time.monotonic() + seconds

    async def one() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            while time.monotonic() < deadline:
                statuses.append((await client.get("/health")).status_code)

    await asyncio.gather(*(one() for _ in range(clients)))
    return statuses


def test_a_health_flood_checks_each_dependency_at_most_once_a_second(
    proxy: LiveProxy, double: OllamaDouble
) -> None:
    double.requests.clear()
    started = time.monotonic()
    statuses = asyncio.run(flood(proxy.url, 2.5, clients=8))
    elapsed = time.monotonic() - started
    assert len(statuses) >= 50 and set(statuses) == {200}
    allowed = math.ceil(elapsed) + 1  # one per started second, and one already under way
    for path in ("/api/version", "/api/tags"):
        assert 2 <= len(double.requests_to(path)) <= allowed, path
    assert proxy.services.checks.cache_state.runs <= allowed  # Redis' PING likewise
