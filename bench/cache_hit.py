"""Benchmark: ResponseCache.get() latency for a ~50 KB Message over TLS on loopback.

Usage: .venv/bin/python bench/cache_hit.py [--iterations 2000] [--size 50000]
Starts its own TLS-only redis-server (devkit/redis_tls.py helpers; needs `redis-server`).
Target: hit p50 <= 3 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit.redis_tls import RedisTLSServer, make_certs  # noqa: E402
from proxy_app.cache.store import ResponseCache  # noqa: E402
from proxy_app.config import Settings  # noqa: E402


def big_message(size: int) -> dict[str, Any]:
    line = "def handler(request):  # some generated code line with ünïcode\n"
    text = (line * (size // len(line) + 1))[:size]
    return {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "qwen2.5-coder:7b",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12000, "output_tokens": 9000},
    }


def big_request(size: int) -> dict[str, Any]:
    return {
        "model": "qwen2.5-coder:7b",
        "messages": [{"role": "user", "content": "x" * size}],
        "options": {"temperature": 0, "num_ctx": 32768, "num_predict": 4096},
        "stream": True,
        "keep_alive": "30m",
    }


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(server: RedisTLSServer, iterations: int, size: int) -> None:
    settings = Settings(redis_url=server.url, redis_ca_file=str(server.certs.ca_file))
    cache = ResponseCache(settings)
    try:
        upstream = big_request(size)
        t0 = time.perf_counter()
        for _ in range(100):
            key = cache.key(
                api_key="sk-bench", model_digest="sha256:" + "0" * 64, upstream=upstream
            )
        key_ms = (time.perf_counter() - t0) / 100 * 1000
        await cache.put(key, big_message(size))
        print(
            f"stored {cache.bytes_stored} bytes; key() for a {size}-byte request: {key_ms:.3f} ms"
        )
        for _ in range(50):  # warm up the pool / TLS session
            await cache.get(key)
        samples = []
        for _ in range(iterations):
            t = time.perf_counter()
            hit = await cache.get(key)
            samples.append((time.perf_counter() - t) * 1000)
            assert hit is not None
        print(
            f"get() hit over TLS, n={iterations}: p50 {statistics.median(samples):.3f} ms, "
            f"p95 {pct(samples, 0.95):.3f} ms, p99 {pct(samples, 0.99):.3f} ms"
        )
    finally:
        await cache.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--size", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        work = Path(tmp)
        server = RedisTLSServer(make_certs(work / "certs"), work / "redis")
        server.start()
        try:
            asyncio.run(run(server, args.iterations, args.size))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
