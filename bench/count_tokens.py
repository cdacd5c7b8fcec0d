"""Benchmark: counting the prompt of Claude Code's captured 49 KB request, per request.

Usage: .venv/bin/python bench/count_tokens.py [--iterations 2000]
Same run, same request (tests/fixtures/claude_code/first_request.json, translated once):
  estimate      the character estimate with its calibration (other families; the old path)
  exact-cold    Qwen's exact count with an empty tools cache (a new tool list)
  exact-warm    Qwen's exact count, the same request again (system turn and tools cached)
  exact-turn    Qwen's exact count of a conversation one turn longer each time (a new ~2 KB
                tool result): what each Claude Code turn costs — only the new turn is encoded
Each figure is count + guard (the comparison with the limit). Target: exact-warm adds at most
1 ms p50 over the estimate (exact-turn is the one to compare).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from proxy_app import vocab  # noqa: E402
from proxy_app.api.anthropic import MessagesRequest  # noqa: E402
from proxy_app.engines.chat_template import QWEN25_CODER  # noqa: E402
from proxy_app.engines.profile import ModelProfile  # noqa: E402
from proxy_app.tokens import TokenCounter  # noqa: E402
from proxy_app.translate import to_ollama_request  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "claude_code" / "first_request.json"
MODEL = "qwen2.5-coder:7b"
QWEN = ModelProfile("qwen2", QWEN25_CODER.source(), "You are Qwen.", ("completion", "tools"))
OTHER = ModelProfile("llama", "{{ .Prompt }}")
LIMIT = 32768 - 4096


def payload() -> dict[str, Any]:
    request = MessagesRequest.model_validate(json.loads(FIXTURE.read_text()))
    upstream = to_ollama_request(request, model=MODEL, num_ctx=32768, keep_alive="30m", think=False)
    return upstream.payload


def timed(fn: Any, iterations: int) -> list[float]:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    body = payload()
    vocab.vocabulary_for("qwen2")  # loaded at start-up in proxy_app, not per request
    warm = TokenCounter()
    other = TokenCounter()

    def guard(counter: TokenCounter, profile: ModelProfile) -> bool:
        return counter.measure(MODEL, profile, body).tokens <= LIMIT

    result = "Tool output line with some paths /src/app/main.py and numbers 12345\n" * 30
    turns = iter(
        {**body, "messages": [*body["messages"], {"role": "tool", "content": f"{i} {result}"}]}
        for i in range(args.iterations + 1)
    )
    growing = TokenCounter()
    cases = {
        "estimate": lambda: guard(other, OTHER),
        "exact-cold": lambda: guard(TokenCounter(), QWEN),
        "exact-warm": lambda: guard(warm, QWEN),
        "exact-turn": lambda: growing.measure(MODEL, QWEN, next(turns)).tokens <= LIMIT,
    }
    p50 = {}
    for name, fn in cases.items():
        fn()  # warm-up
        samples = timed(fn, args.iterations)
        p50[name] = statistics.median(samples)
        p90 = sorted(samples)[int(0.9 * len(samples))]
        print(f"{name}: p50 {p50[name]:.3f} ms, p90 {p90:.3f} ms ({args.iterations} runs)")
    added = p50["exact-turn"] - p50["estimate"]
    print(
        f"exact-turn adds {added:.3f} ms p50 over the estimate (target <= 1 ms): "
        f"{'met' if added <= 1.0 else 'MISSED'}"
    )
    print(
        f"tokens: exact {warm.measure(MODEL, QWEN, body).tokens}, "
        f"estimate {other.measure(MODEL, OTHER, body).tokens}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
