"""The response cache through the API: real redis-server over TLS, the SDK as the client."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from typing import Any

import anthropic
import httpx
import pytest

from devkit.redis_tls import RedisTLSServer
from ollama_double.server import OllamaDouble, Reply
from tests.conftest import API_KEY, LiveProxy

BODY = {
    "model": "claude-sonnet-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "what is 2+2?"}],
}
HEADERS = {"x-api-key": API_KEY}


@pytest.fixture
def cached(make_proxy: Any, redis_tls_server_fn: RedisTLSServer) -> LiveProxy:
    server = redis_tls_server_fn
    proxy: LiveProxy = make_proxy(redis_url=server.url, redis_ca_file=str(server.certs.ca_file))
    return proxy


def post(proxy: LiveProxy, body: dict[str, Any] = BODY, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{proxy.url}/v1/messages", json=body, headers={**HEADERS, **headers}, timeout=30
    )


def streamed_text(response: httpx.Response) -> str:
    """The text a client assembles from an SSE body's text_delta events."""
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    return "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")


def sdk(proxy: LiveProxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=API_KEY, max_retries=0)


def test_second_identical_request_is_a_hit(cached: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("four"))
    first, second = post(cached), post(cached)
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert second.json()["content"] == first.json()["content"]
    assert second.json()["id"] != first.json()["id"]
    assert len(double.chat_requests) == 1


def test_stream_answer_is_served_as_message_and_back(
    cached: LiveProxy, double: OllamaDouble
) -> None:
    double.script(Reply("streamed once"))
    with sdk(cached).messages.stream(**BODY) as stream:
        live = stream.get_final_message()
    replayed = sdk(cached).messages.create(**BODY)
    assert replayed.content[0].text == live.content[0].text == "streamed once"
    assert replayed.id != live.id
    other = {**BODY, "messages": [{"role": "user", "content": "other"}]}
    double.script(Reply("as a message"))
    sdk(cached).messages.create(**other)
    with sdk(cached).messages.stream(**other) as stream:
        assert "".join(stream.text_stream) == "as a message"
        assert stream.get_final_message().stop_reason == "end_turn"
    assert len(double.chat_requests) == 2


def test_stream_hit_follows_the_sse_grammar(cached: LiveProxy) -> None:
    post(cached)
    response = post(cached, {**BODY, "stream": True})
    assert response.headers["x-cache"] == "HIT"
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_tool_use_answer_replays(cached: LiveProxy, double: OllamaDouble) -> None:
    tool = {"name": "Bash", "input_schema": {"type": "object"}}
    body = {**BODY, "tools": [tool]}
    double.script(Reply("", tool_calls=[{"name": "Bash", "arguments": {"command": "ls"}}]))
    post(cached, body)
    hit = post(cached, body).json()
    assert hit["stop_reason"] == "tool_use"
    assert hit["content"][0]["input"] == {"command": "ls"}


def test_errors_are_not_stored(cached: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply.http_error(500, "runner died"), Reply.stream_error("boom", after=1))
    assert post(cached).status_code == 500
    streamed = post(cached, {**BODY, "stream": True})
    assert "event: error" in streamed.text
    ok = post(cached)
    assert ok.status_code == 200 and ok.headers["x-cache"] == "MISS"


def test_disconnected_stream_is_not_stored(cached: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("partial", hang=True))
    with httpx.stream(
        "POST", f"{cached.url}/v1/messages", json={**BODY, "stream": True}, headers=HEADERS
    ) as response:
        for chunk in response.iter_bytes():
            if b"content_block_delta" in chunk:
                break
    assert double.wait_for_disconnect(timeout=5)
    again = post(cached)
    assert again.headers["x-cache"] == "MISS"


def test_no_cache_and_no_store_directives(cached: LiveProxy, double: OllamaDouble) -> None:
    post(cached)
    assert post(cached, **{"cache-control": "no-cache"}).headers["x-cache"] == "BYPASS"
    other = {**BODY, "messages": [{"role": "user", "content": "unstored"}]}
    assert post(cached, other, **{"cache-control": "no-store"}).headers["x-cache"] == "MISS"
    assert post(cached, other).headers["x-cache"] == "MISS"
    assert len(double.chat_requests) == 4


def test_concurrent_identical_requests_generate_once(
    cached: LiveProxy, double: OllamaDouble
) -> None:
    double.script(Reply("shared answer", first_chunk_delay=0.5))
    bodies = [{**BODY, "stream": True}, BODY, BODY, {**BODY, "stream": True}, BODY]
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda body: post(cached, body), bodies))
    assert len(double.chat_requests) == 1
    for body, response in zip(bodies, responses, strict=True):
        assert response.status_code == 200
        text = (
            streamed_text(response) if body.get("stream") else response.json()["content"][0]["text"]
        )
        assert text == "shared answer"  # the leader streams it live, the others get a replay


def test_keys_are_namespaced_per_api_key(
    make_proxy: Any, redis_tls_server_fn: Any, double: OllamaDouble
) -> None:
    server = redis_tls_server_fn
    proxy = make_proxy(
        api_keys=[API_KEY, "sk-other"],
        redis_url=server.url,
        redis_ca_file=str(server.certs.ca_file),
    )
    post(proxy)
    assert post(proxy, **{"x-api-key": "sk-other"}).headers["x-cache"] == "MISS"
    assert post(proxy).headers["x-cache"] == "HIT"


@pytest.mark.parametrize("problem", ["wrong-ca", "no-password"])
def test_broken_redis_setup_degrades_but_serves(
    make_proxy: Any, redis_tls_server_fn: RedisTLSServer, double: OllamaDouble, problem: str
) -> None:
    server = redis_tls_server_fn
    if problem == "wrong-ca":
        settings = {"redis_url": server.url, "redis_ca_file": str(server.certs.wrong_ca_file)}
    else:
        settings = {
            "redis_url": server.url_without_password,
            "redis_ca_file": str(server.certs.ca_file),
        }
    proxy = make_proxy(**settings)
    health = httpx.get(proxy.url + "/health").json()
    assert health["status"] == "degraded"
    assert health["components"]["cache"]["status"] == "error"
    error = health["components"]["cache"]["error"].lower()
    assert ("certificate" in error) if problem == "wrong-ca" else ("auth" in error)
    for _ in range(3):
        response = post(proxy)
        assert response.status_code == 200 and response.headers["x-cache"] == "MISS"
    assert server.password not in httpx.get(proxy.url + "/health").text


def deep_health(proxy: LiveProxy) -> Any:
    """/health checked now (the plain one may answer from up to a second ago)."""
    return httpx.get(proxy.url + "/health?deep=1", headers={"x-api-key": API_KEY}).json()


def test_redis_killed_then_restarted(
    cached: LiveProxy, redis_tls_server_fn: RedisTLSServer, double: OllamaDouble
) -> None:
    server = redis_tls_server_fn
    post(cached)
    server.stop()
    for _ in range(3):
        assert post(cached).status_code == 200
    assert deep_health(cached)["status"] == "degraded"
    server.start()
    assert deep_health(cached)["status"] == "healthy"
    post(cached)  # Redis restarted empty: this stores again
    assert post(cached).headers["x-cache"] == "HIT"
    metrics = httpx.get(cached.url + "/metrics").text
    assert "proxy_cache_hits_total 1" in metrics
    assert "proxy_cache_store_errors_total" in metrics


async def burst(url: str, body: dict[str, Any], count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(client.post("/v1/messages", json=body, headers={"x-api-key": API_KEY})
              for _ in range(count))
        )  # fmt: skip


def test_a_burst_of_identical_fast_requests_generates_once(
    cached: LiveProxy, double: OllamaDouble
) -> None:
    double.script(Reply("burst answer"))  # no prefill: it ends while the burst still arrives
    responses = asyncio.run(burst(cached.url, BODY, 300))
    assert len(double.chat_requests) == 1
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["content"][0]["text"] for r in responses} == {"burst answer"}
