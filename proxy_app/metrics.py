"""Process-local counters rendered in Prometheus' text format at /metrics."""

from __future__ import annotations

from collections import Counter
from typing import Any

LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.upstream_errors: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()
        # (model class Claude Code asked for, direction): what the same tokens cost at Anthropic
        self.class_tokens: Counter[tuple[str, str]] = Counter()
        self.recovered_tool_calls = 0
        # answered by the protocol before the app (proxy_app.server): header_too_large,
        # incomplete_request, connection_cap
        self.refused: Counter[str] = Counter()
        self.latency_buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        self.requests[(path, status)] += 1
        self.latency_sum += seconds
        self.latency_count += 1
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency_buckets[i] += 1

    def observe_tokens(self, requested_model: str, input_tokens: int, output_tokens: int) -> None:
        """Count one generation's tokens, in total and by the requested model's class."""
        family = model_class(requested_model)
        self.tokens["input"] += input_tokens
        self.tokens["output"] += output_tokens
        self.class_tokens[(family, "input")] += input_tokens
        self.class_tokens[(family, "output")] += output_tokens

    def render(self, cache_stats: dict[str, Any]) -> str:
        lines = [
            "# HELP proxy_requests_total Requests answered, by path and HTTP status.",
            "# TYPE proxy_requests_total counter",
        ]
        for (path, status), count in sorted(self.requests.items()):
            lines.append(f'proxy_requests_total{{path="{path}",status="{status}"}} {count}')
        lines += [
            "# HELP proxy_request_duration_seconds Time to answer a request.",
            "# TYPE proxy_request_duration_seconds histogram",
        ]
        for bound, count in zip(LATENCY_BUCKETS, self.latency_buckets, strict=True):
            lines.append(f'proxy_request_duration_seconds_bucket{{le="{bound}"}} {count}')
        lines += [
            f'proxy_request_duration_seconds_bucket{{le="+Inf"}} {self.latency_count}',
            f"proxy_request_duration_seconds_sum {self.latency_sum:.6f}",
            f"proxy_request_duration_seconds_count {self.latency_count}",
            "# HELP proxy_upstream_errors_total Ollama failures, by Anthropic error type.",
            "# TYPE proxy_upstream_errors_total counter",
        ]
        for kind, count in sorted(self.upstream_errors.items()):
            lines.append(f'proxy_upstream_errors_total{{type="{kind}"}} {count}')
        lines += [
            "# HELP proxy_refused_total Requests refused by the protocol limits, by reason.",
            "# TYPE proxy_refused_total counter",
        ]
        for reason, count in sorted(self.refused.items()):
            lines.append(f'proxy_refused_total{{reason="{reason}"}} {count}')
        lines += [
            "# HELP proxy_tokens_total Tokens reported by Ollama, by direction.",
            "# TYPE proxy_tokens_total counter",
        ]
        for direction in ("input", "output"):
            lines.append(f'proxy_tokens_total{{direction="{direction}"}} {self.tokens[direction]}')
        lines += [
            "# HELP proxy_requested_tokens_total Tokens by the model class the client asked for.",
            "# TYPE proxy_requested_tokens_total counter",
        ]
        for (family, direction), count in sorted(self.class_tokens.items()):
            lines.append(
                f'proxy_requested_tokens_total{{class="{family}",direction="{direction}"}} {count}'
            )
        lines += [
            "# HELP proxy_recovered_tool_calls_total Tool calls the model wrote as text, rescued.",
            "# TYPE proxy_recovered_tool_calls_total counter",
            f"proxy_recovered_tool_calls_total {self.recovered_tool_calls}",
        ]
        for name, value in cache_stats.items():
            lines += [
                f"# TYPE proxy_cache_{name}_total counter",
                f"proxy_cache_{name}_total {value}",
            ]
        return "\n".join(lines) + "\n"


def model_class(requested_model: str) -> str:
    """`opus`, `sonnet` or `haiku` when the requested id names one, else `other`."""
    lowered = requested_model.lower()
    for family in MODEL_CLASSES:
        if family in lowered:
            return family
    return "other"


MODEL_CLASSES = ("opus", "sonnet", "haiku")
