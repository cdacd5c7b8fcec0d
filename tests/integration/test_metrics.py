"""/metrics through prometheus_client: the fleet's histograms are observed, each app has its own
registry, and every name users scrape is still there."""

from __future__ import annotations

import re
import time

import httpx

from ollama_double.server import OllamaDouble, Reply
from proxy_app.metrics import Metrics
from tests.conftest import API_KEY, LiveProxy

BODY = {
    "model": "claude-sonnet-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "x"}],
}


def sample(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found is not None, f"{name} not in /metrics"
    return float(found[1])


def test_a_streamed_generation_is_timed(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("one two three four", first_chunk_delay=0.3, chunk_delay=0.05))
    body = {**BODY, "stream": True}
    with httpx.stream(
        "POST", proxy.url + "/v1/messages", json=body, headers={"x-api-key": API_KEY}
    ) as response:
        assert b"message_stop" in response.read()
    text = httpx.get(proxy.url + "/metrics").text
    assert sample(text, "proxy_time_to_first_token_seconds_count") == 1
    assert sample(text, "proxy_queue_wait_seconds_count") == 1
    assert sample(text, "proxy_output_tokens_per_second_count") == 1
    # the 0.3 s prefill is waited for, and the first token comes after it
    assert 'proxy_queue_wait_seconds_bucket{le="0.1"} 0.0' in text
    assert 'proxy_time_to_first_token_seconds_bucket{le="0.25"} 0.0' in text
    assert sample(text, "proxy_time_to_first_token_seconds_sum") >= 0.3
    rate = sample(text, "proxy_output_tokens_per_second_sum")
    assert 0 < rate < 4 / 0.3  # four words after a 0.3 s prefill


def test_a_non_streamed_generation_has_no_first_token(
    proxy: LiveProxy, double: OllamaDouble
) -> None:
    double.script(Reply("hello"))
    response = httpx.post(proxy.url + "/v1/messages", json=BODY, headers={"x-api-key": API_KEY})
    assert response.status_code == 200
    text = httpx.get(proxy.url + "/metrics").text
    assert sample(text, "proxy_queue_wait_seconds_count") == 1
    assert sample(text, "proxy_time_to_first_token_seconds_count") == 0


def test_event_loop_lag_is_sampled(proxy: LiveProxy) -> None:
    time.sleep(0.35)
    text = httpx.get(proxy.url + "/metrics").text
    assert sample(text, "proxy_event_loop_lag_seconds_count") >= 2


def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe_request("/health", 200, 0.01)
    first.refused["header_too_large"] += 1
    assert 'proxy_requests_total{path="/health",status="200"} 1.0' in first.render({})
    assert "proxy_requests_total{" not in second.render({})
    assert sample(second.render({}), "proxy_request_duration_seconds_count") == 0


def test_every_scraped_name_is_rendered() -> None:
    """The names tests, `fleet status` and the alert rules read (with their TYPE lines)."""
    text = Metrics().render({"hits": 0, "misses": 0, "bytes_stored": 0})
    for name, kind in [
        ("proxy_requests_total", "counter"),
        ("proxy_upstream_errors_total", "counter"),
        ("proxy_refused_total", "counter"),
        ("proxy_tokens_total", "counter"),
        ("proxy_requested_tokens_total", "counter"),
        ("proxy_recovered_tool_calls_total", "counter"),
        ("proxy_cache_hits_total", "counter"),
        ("proxy_cache_bytes_stored_total", "counter"),
        ("proxy_request_duration_seconds", "histogram"),
        ("proxy_time_to_first_token_seconds", "histogram"),
        ("proxy_output_tokens_per_second", "histogram"),
        ("proxy_queue_wait_seconds", "histogram"),
        ("proxy_event_loop_lag_seconds", "histogram"),
    ]:
        assert f"# TYPE {name} {kind}\n" in text
