"""/metrics in Prometheus' text format, through `prometheus_client` with one registry per app.

Counters stay plain tallies (`metrics.requests[(path, status)] += 1`: cheap on the hot path,
read by tests and summed by `fleet status`) and are exposed by a collector under the names
users scrape; durations and rates are `prometheus_client` histograms. The alert rules of the
fleet read these names: do not rename them.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)
FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
RATE_BUCKETS = (1.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.upstream_errors: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()
        # (model class Claude Code asked for, direction): what the same tokens cost at Anthropic
        self.class_tokens: Counter[tuple[str, str]] = Counter()
        self.recovered_tool_calls = 0
        # answered by the protocol before the app (proxy_app.server): header_too_large,
        # incomplete_request, connection_cap, malformed_request
        self.refused: Counter[str] = Counter()
        self.cache_stats: dict[str, Any] = {}
        self.registry = CollectorRegistry()
        self.registry.register(_Tallies(self))
        histogram = functools.partial(_histogram, self.registry)
        self.request_duration = histogram(
            "proxy_request_duration_seconds", "Time to answer a request.", LATENCY_BUCKETS
        )
        self.time_to_first_token = histogram(
            "proxy_time_to_first_token_seconds",
            "Streamed requests answered by a generation: seconds from the request's arrival "
            "to its first content token handed to the client's connection.",
            FIRST_TOKEN_BUCKETS,
        )
        self.output_tokens_per_second = histogram(
            "proxy_output_tokens_per_second",
            "Per generation with output: its output tokens divided by its seconds upstream, "
            "from the request sent to Ollama to the last token (prefill included).",
            RATE_BUCKETS,
        )
        self.queue_wait = histogram(
            "proxy_queue_wait_seconds",
            "Per request answered by a generation: seconds from its arrival until that "
            "generation starts answering - Ollama's first byte (a stream's headers; a "
            "non-streamed generation's whole answer), or for a single-flight follower the "
            "shared answer. Covers parsing, counting, the worker pool, single-flight and "
            "Ollama's own queue and prefill.",
            WAIT_BUCKETS,
        )
        self.event_loop_lag = histogram(
            "proxy_event_loop_lag_seconds",
            "How late the event loop ran a timer, sampled every 0.1 s: its scheduling delay, "
            "which every request waiting on it suffers too.",
            LAG_BUCKETS,
        )

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        self.requests[(path, status)] += 1
        self.request_duration.observe(seconds)

    def observe_tokens(self, requested_model: str, input_tokens: int, output_tokens: int) -> None:
        """Count one generation's tokens, in total and by the requested model's class."""
        family = model_class(requested_model)
        self.tokens["input"] += input_tokens
        self.tokens["output"] += output_tokens
        self.class_tokens[(family, "input")] += input_tokens
        self.class_tokens[(family, "output")] += output_tokens

    def observe_generation(self, output_tokens: int, seconds: float) -> None:
        """One generation's output rate (nothing for an answer without output)."""
        if output_tokens > 0 and seconds > 0:
            self.output_tokens_per_second.observe(output_tokens / seconds)

    def render(self, cache_stats: dict[str, Any]) -> str:
        self.cache_stats = cache_stats
        return generate_latest(self.registry).decode()


def _histogram(
    registry: CollectorRegistry, name: str, documentation: str, buckets: tuple[float, ...]
) -> Histogram:
    return Histogram(name, documentation, buckets=buckets, registry=registry)


class _Tallies(Collector):
    """The counters, from the tallies, under the names and labels users scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        yield _family(
            "proxy_requests", "Requests answered, by path and HTTP status.",
            ["path", "status"], {(p, str(s)): n for (p, s), n in m.requests.items()},
        )  # fmt: skip
        yield _family(
            "proxy_upstream_errors", "Engine failures, by Anthropic error type.",
            ["type"], {(k,): n for k, n in m.upstream_errors.items()},
        )  # fmt: skip
        yield _family(
            "proxy_refused", "Requests refused by the protocol limits, by reason.",
            ["reason"], {(k,): n for k, n in m.refused.items()},
        )  # fmt: skip
        yield _family(
            "proxy_tokens", "Tokens counted for prompts and reported by the engine, by direction.",
            ["direction"], {(d,): m.tokens[d] for d in ("input", "output")},
        )  # fmt: skip
        yield _family(
            "proxy_requested_tokens", "Tokens by the model class the client asked for.",
            ["class", "direction"], dict(m.class_tokens),
        )  # fmt: skip
        yield _family(
            "proxy_recovered_tool_calls", "Tool calls the model wrote as text, rescued.",
            [], {(): m.recovered_tool_calls},
        )  # fmt: skip
        for name, value in m.cache_stats.items():
            yield _family(f"proxy_cache_{name}", f"Response cache: {name}.", [], {(): value})


def _family(
    name: str, documentation: str, labels: list[str], values: dict[Any, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def model_class(requested_model: str) -> str:
    """`opus`, `sonnet` or `haiku` when the requested id names one, else `other`."""
    lowered = requested_model.lower()
    for family in MODEL_CLASSES:
        if family in lowered:
            return family
    return "other"


MODEL_CLASSES = ("opus", "sonnet", "haiku")
