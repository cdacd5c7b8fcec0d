"""A bounded asyncio + httpx load generator: N requests at concurrency C, per-request timings.

Per request it records the total latency, the time to the first response-body byte (TTFB) and,
for streams, the time to the first text token (TTFT: the first Anthropic `text_delta` event, or
the first Ollama NDJSON chunk). Each case is bounded by a request count and a wall-clock limit.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Case:
    url: str
    body: bytes
    headers: dict[str, str]
    requests: int
    concurrency: int
    warmup: int = 10
    time_limit: float = 90.0
    first_token: bytes | None = None  # marker of the first text token in a stream
    expect: bytes = b""  # must appear in a successful response body
    expect_header: tuple[str, str] | None = None  # e.g. ("x-cache", "HIT")


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # seconds
    ttfb: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    wall: float = 0.0
    timed_out: bool = False

    def summary(self) -> dict[str, Any]:
        done = len(self.latencies)
        out: dict[str, Any] = {
            "ok": done,
            "errors": self.errors,
            "wall_s": round(self.wall, 3),
            "rps": round(done / self.wall, 2) if self.wall > 0 else 0.0,
            "latency_ms": pcts(self.latencies),
            "ttfb_ms": pcts(self.ttfb),
        }
        if self.ttft:
            out["ttft_ms"] = pcts(self.ttft)
        if self.first_error:
            out["first_error"] = self.first_error
        if self.timed_out:
            out["timed_out"] = True
        return out


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def pcts(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ms = [s * 1000 for s in samples]
    return {
        "p50": round(statistics.median(ms), 3),
        "p90": round(percentile(ms, 0.90), 3),
        "p99": round(percentile(ms, 0.99), 3),
        "mean": round(statistics.fmean(ms), 3),
        "max": round(max(ms), 3),
    }


async def one(client: httpx.AsyncClient, case: Case) -> tuple[float, float, float | None]:
    """(latency, ttfb, ttft) of one request; raises on a failed one."""
    t0 = time.perf_counter()
    ttfb = ttft = None
    tail = b""
    seen_expect = not case.expect
    async with client.stream("POST", case.url, content=case.body, headers=case.headers) as resp:
        async for chunk in resp.aiter_raw():
            now = time.perf_counter()
            if ttfb is None:
                ttfb = now - t0
            window = tail + chunk
            if ttft is None and case.first_token is not None and case.first_token in window:
                ttft = now - t0
            if not seen_expect and case.expect in window:
                seen_expect = True
            tail = window[-64:]
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {tail[-200:]!r}")
        if case.expect_header is not None:
            name, value = case.expect_header
            if resp.headers.get(name) != value:
                raise RuntimeError(f"{name}: {resp.headers.get(name)!r}, expected {value!r}")
    end = time.perf_counter()
    if not seen_expect:
        raise RuntimeError(f"no {case.expect!r} in the response (ends {tail!r})")
    return end - t0, ttfb if ttfb is not None else end - t0, ttft


async def run_case(case: Case, on_measure: Callable[[], None] | None = None) -> Outcome:
    limits = httpx.Limits(
        max_connections=case.concurrency, max_keepalive_connections=case.concurrency
    )
    timeout = httpx.Timeout(60.0, connect=5.0)
    outcome = Outcome()
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        # Warm-up: opens the connections and fills the servers' caches; not measured.
        warm = max(case.warmup, case.concurrency)
        results = await asyncio.gather(
            *(one(client, case) for _ in range(warm)), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if len(failed) == len(results):
            outcome.errors = len(failed)
            outcome.first_error = f"warm-up failed: {failed[0]!r}"[:500]
            return outcome

        if on_measure is not None:
            on_measure()
        issued = 0
        deadline = time.perf_counter() + case.time_limit

        async def worker() -> None:
            nonlocal issued
            while issued < case.requests:
                if time.perf_counter() > deadline:
                    outcome.timed_out = True
                    return
                issued += 1
                try:
                    latency, ttfb, ttft = await one(client, case)
                except Exception as exc:  # counted, first one kept
                    outcome.errors += 1
                    if not outcome.first_error:
                        outcome.first_error = repr(exc)[:500]
                    continue
                outcome.latencies.append(latency)
                outcome.ttfb.append(ttfb)
                if ttft is not None:
                    outcome.ttft.append(ttft)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(case.concurrency)))
        outcome.wall = time.perf_counter() - start
    return outcome
