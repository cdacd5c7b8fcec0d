"""Failing conditions: streams get real statuses, the cache outlives Ollama, and single-flight
survives its first requester leaving."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from devkit.redis_tls import RedisTLSServer
from ollama_double.server import ERR_CONTEXT, ERR_QUEUE_FULL, OllamaDouble, Reply
from tests.conftest import API_KEY, LiveProxy
from tests.integration.test_errors import assert_envelope

BODY: dict[str, Any] = {
    "model": "claude-sonnet-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "what is 2+2?"}],
}
STREAM = {**BODY, "stream": True}
HEADERS = {"x-api-key": API_KEY}


def post(proxy: LiveProxy, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/messages", json=body, headers=HEADERS, timeout=30)


def text_of(response: httpx.Response) -> str:
    if not response.headers["content-type"].startswith("text/event-stream"):
        return str(response.json()["content"][0]["text"])
    events = [json.loads(x[6:]) for x in response.text.splitlines() if x.startswith("data: ")]
    assert events[-1]["type"] == "message_stop", response.text
    return "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("reply", "status", "kind", "words"),
    [
        (Reply.http_error(503, ERR_QUEUE_FULL), 529, "overloaded_error", ["queue is full"]),
        (Reply.http_error(404, "model 'x' not found"), 404, "not_found_error", ["not found"]),
        (Reply.http_error(400, ERR_CONTEXT), 400, "invalid_request_error", ["prompt is too long"]),
    ],
    ids=["queue-full", "model-gone", "prompt-too-long"],
)
def test_fast_stream_failure_gets_its_real_status(
    proxy: LiveProxy, double: OllamaDouble, reply: Reply, status: int, kind: str, words: list[str]
) -> None:
    double.script(reply)
    response = post(proxy, STREAM)
    assert_envelope(response, status, kind, *words)
    if status == 529:
        assert response.headers["retry-after"] == "5"


def test_stream_to_a_stopped_ollama_is_529(proxy: LiveProxy, double: OllamaDouble) -> None:
    post(proxy, BODY)  # the catalog knows the model
    double.stop()
    response = post(proxy, STREAM)
    assert_envelope(response, 529, "overloaded_error", "unreachable")
    assert response.headers["retry-after"] == "5"


@pytest.mark.parametrize("failure", ["queue-full", "connection-refused"])
def test_sdk_retries_a_failed_stream_and_succeeds(
    make_proxy: Any, double: OllamaDouble, failure: str
) -> None:
    proxy = make_proxy()
    client = anthropic.Anthropic(base_url=proxy.url, api_key=API_KEY, max_retries=2)
    if failure == "queue-full":
        double.script(Reply.http_error(503, ERR_QUEUE_FULL), Reply("four"))
    else:
        post(proxy, BODY)
        port = double.port
        double.stop()
        threading.Timer(1.0, lambda: (setattr(double, "port", port), double.start())).start()
        double.script(Reply("four"))
    with client.messages.stream(**BODY) as stream:
        assert "".join(stream.text_stream) == "four"
    assert proxy.app.state.metrics.upstream_errors["overloaded_error"] == 1


def test_slow_prefill_still_gets_message_start_and_pings(
    make_proxy: Any, double: OllamaDouble
) -> None:
    proxy = make_proxy(stream_wait=0.1, ping_interval=0.1)
    double.script(Reply("late answer", first_chunk_delay=1.0))
    with httpx.stream(
        "POST", f"{proxy.url}/v1/messages", json=STREAM, headers=HEADERS, timeout=30
    ) as response:
        assert response.status_code == 200
        received = b""
        for chunk in response.iter_bytes():
            received += chunk
            if received.count(b"event: ping") >= 2:
                break
        assert received.startswith(b"event: message_start")
        assert b"late" not in received  # the prefill has not ended yet
        assert double.completed_streams == 0


def test_failure_after_a_slow_prefill_is_an_sse_error(
    make_proxy: Any, double: OllamaDouble
) -> None:
    proxy = make_proxy(stream_wait=0.1)
    double.script(Reply.http_error(503, ERR_QUEUE_FULL, first_chunk_delay=0.5))
    response = post(proxy, STREAM)
    assert response.status_code == 200
    assert "event: error" in response.text and "overloaded_error" in response.text


@pytest.fixture
def cached(make_proxy: Any, redis_tls_server_fn: RedisTLSServer) -> LiveProxy:
    server = redis_tls_server_fn
    proxy: LiveProxy = make_proxy(redis_url=server.url, redis_ca_file=str(server.certs.ca_file))
    return proxy


@pytest.mark.parametrize("stream", [False, True])
def test_cached_prompt_is_served_while_ollama_is_down(
    cached: LiveProxy, double: OllamaDouble, stream: bool
) -> None:
    double.script(Reply("four"))
    assert post(cached, BODY).headers["x-cache"] == "MISS"
    double.stop()
    cached.services.catalog._fetched = 0.0  # as if the catalog's 10 s had passed
    for _ in range(2):
        hit = post(cached, STREAM if stream else BODY)
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT", hit.text
        assert text_of(hit) == "four"
    other = {**BODY, "messages": [{"role": "user", "content": "never asked"}]}
    assert_envelope(post(cached, other), 529, "overloaded_error")
    health = httpx.get(cached.url + "/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["components"]["ollama"]["status"] == "error"


def test_leader_leaving_costs_the_followers_nothing(
    cached: LiveProxy, double: OllamaDouble
) -> None:
    double.script(Reply("shared answer", first_chunk_delay=3.0, chunk_delay=0.05))
    flights = cached.services.cache.flights
    with httpx.stream(
        "POST", f"{cached.url}/v1/messages", json=STREAM, headers=HEADERS, timeout=30
    ) as leader:
        wait_until(lambda: len(double.chat_requests) == 1, "the leader's generation")
        bodies = [STREAM, BODY, STREAM, BODY, STREAM]
        with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
            futures = [pool.submit(post, cached, body) for body in bodies]
            wait_until(lambda: flights.followers == len(bodies), "the followers to join")
            leader.close()  # the first requester leaves mid-prefill
            responses = [future.result() for future in futures]
    for response in responses:
        assert response.status_code == 200
        assert text_of(response) == "shared answer"
    assert len(double.chat_requests) == 1
    assert double.cancelled_streams == 0


def test_generation_stops_when_the_last_client_leaves(
    cached: LiveProxy, double: OllamaDouble
) -> None:
    double.script(Reply("endless", hang=True))
    flights = cached.services.cache.flights
    with (
        httpx.Client(base_url=cached.url, headers=HEADERS, timeout=30) as one,
        httpx.Client(base_url=cached.url, headers=HEADERS, timeout=30) as two,
        one.stream("POST", "/v1/messages", json=STREAM) as first,
    ):
        assert first.status_code == 200
        with two.stream("POST", "/v1/messages", json=STREAM) as second:
            assert second.status_code == 200
            wait_until(lambda: flights.followers == 1, "the follower to join")
            first.close()
            time.sleep(0.3)
            assert not double.disconnected.is_set()  # one client still waits
    assert double.wait_for_disconnect(timeout=5)
    assert len(double.chat_requests) == 1
    wait_until(lambda: flights.in_flight() == 0, "the flight to end")
