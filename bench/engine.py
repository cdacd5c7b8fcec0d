"""`python -m bench.engine` (`make bench-engine`): proxy_app in front of a real engine vs the
engine directly, one run, and the engine's KV reuse turn by turn through proxy_app.

The engine is llama.cpp's llama-server (devkit.llama_server: the pinned build, SmolLM2-135M,
one slot of 32,768 tokens, 2 threads, CPU). Part 1, the same short conversation (greedy, 32
tokens at most) streamed, requests alternating between three targets:
  engine-openai     POST /v1/chat/completions on llama-server (its own template)
  engine-anthropic  POST /v1/messages on llama-server (its own Anthropic endpoint)
  proxy_app         POST /v1/messages on python -m proxy_app, PROXY_ENGINE=openai (the
                    engine's template via /apply-template, counted by /tokenize, then
                    /v1/completions)
per target: time to first token, total time, output tokens/s and CPU per request (proxy_app's
process, and the engine's). Part 2, a real Claude Code session (the pinned CLI, `claude -p`,
then `claude -p --continue` twice) through proxy_app, on each prompt route (SmolLM2 through the
engine's template; the same weights named qwen2.5-coder:7b, Qwen2.5's template rendered by
proxy_app): the engine's own count of prompt tokens evaluated and taken from its KV cache per
turn. Writes bench/results/engine.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import servers
from devkit.llama_server import SMOLLM2, LocalLlama, running_llama_server
from tests.claude_code.cli import BASE_ARGS, CLAUDE_BIN, build_env

RESULTS = servers.ROOT / "bench" / "results"
API_KEY = "sk-bench-key"
QWEN_ALIAS = "qwen2.5-coder:7b"
SYSTEM = "You are a helpful assistant. Answer in one short paragraph."
QUESTION = "What is a lighthouse for?"
TARGETS = ("engine-openai", "engine-anthropic", "proxy_app")
TURNS = ("say hi", "say it once more, differently", "now say goodbye")


def _sse(response: httpx.Response, is_text: Callable[[dict[str, Any]], bool]) -> float | None:
    """Read a stream to its end; the time of the first event with text (None: no text)."""
    first = None
    for line in response.iter_lines():
        if not line.startswith("data:") or line.endswith("[DONE]"):
            continue
        if first is None and is_text(json.loads(line[5:])):
            first = time.perf_counter()
    return first


def _openai_text(event: dict[str, Any]) -> bool:
    choices = event.get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


def _anthropic_text(event: dict[str, Any]) -> bool:
    return event.get("type") == "content_block_delta"


def request(target: str, urls: dict[str, str], max_tokens: int) -> tuple[str, dict[str, Any]]:
    """(url, body) of one streamed request of the conversation to `target`."""
    messages = [{"role": "user", "content": QUESTION}]
    common = {"stream": True, "max_tokens": max_tokens, "temperature": 0}
    if target == "engine-openai":
        return f"{urls['engine']}/v1/chat/completions", {
            **common,
            "model": SMOLLM2,
            "messages": [{"role": "system", "content": SYSTEM}, *messages],
            "stream_options": {"include_usage": True},
        }
    if target == "engine-anthropic":
        base, model = urls["engine"], SMOLLM2
    else:
        base, model = urls["proxy"], "claude-sonnet-4-5"
    return f"{base}/v1/messages", {**common, "model": model, "system": SYSTEM, "messages": messages}


def measure(
    client: httpx.Client, target: str, urls: dict[str, str], llama: LocalLlama, max_tokens: int
) -> dict[str, float]:
    url, body = request(target, urls, max_tokens)
    is_text = _openai_text if target == "engine-openai" else _anthropic_text
    predicted = llama.counters()["tokens_predicted_total"]
    started = time.perf_counter()
    with client.stream("POST", url, json=body, headers={"x-api-key": API_KEY}) as response:
        response.raise_for_status()
        first = _sse(response, is_text)
    ended = time.perf_counter()
    tokens = llama.counters()["tokens_predicted_total"] - predicted
    first = first or ended
    return {
        "ttft_ms": (first - started) * 1000,
        "total_ms": (ended - started) * 1000,
        "tokens": tokens,
        "tokens_per_s": tokens / (ended - first) if ended > first else 0.0,
    }


def latency(llama: LocalLlama, proxy: servers.Proc, rounds: int) -> dict[str, Any]:
    urls = {"engine": llama.url, "proxy": proxy.url}
    engine_proc = llama.process.pid
    samples: dict[str, list[dict[str, float]]] = {t: [] for t in TARGETS}
    with httpx.Client(timeout=300) as client:
        for target in TARGETS:  # warm-up: the slot holds the prompt afterwards
            measure(client, target, urls, llama, 32)
        for i in range(rounds):
            order = TARGETS[i % 3 :] + TARGETS[: i % 3]
            for target in order:
                cpu_proxy, cpu_engine = proxy.cpu_seconds(), servers.cpu_seconds(engine_proc)
                sample = measure(client, target, urls, llama, 32)
                sample["proxy_cpu_ms"] = (proxy.cpu_seconds() - cpu_proxy) * 1000
                sample["engine_cpu_ms"] = (servers.cpu_seconds(engine_proc) - cpu_engine) * 1000
                samples[target].append(sample)
    return {target: _summary(rows) for target, rows in samples.items()}


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """Medians of the times; means of the CPU (/proc counts it in 10 ms ticks: a median of
    ticks says little, their mean over the rounds is the cost per request)."""
    return {
        key: (statistics.mean if key.endswith("cpu_ms") else statistics.median)(
            row[key] for row in rows
        )
        for key in rows[0]
    }


def session(llama: LocalLlama, proxy: servers.Proc, model: str) -> list[dict[str, int]]:
    """A three-turn Claude Code session through proxy_app; per turn the engine's own report."""
    turns = []
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as work:
        # SmolLM2 may write until the window is full: answers capped by Claude Code's setting
        cap = {"ANTHROPIC_MODEL": model, "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "48"}
        env = build_env(proxy.url, API_KEY, home, cap)
        for i, prompt in enumerate(TURNS):
            evaluated, cached = llama.prompt_seen()
            predicted = llama.counters()["tokens_predicted_total"]
            argv = [CLAUDE_BIN, *BASE_ARGS, *(["--continue"] if i else []), "--", prompt]
            done = subprocess.run(
                argv, cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"claude -p failed on turn {i + 1}: {done.stderr[-2000:]}")
            evaluated_after, cached_after = llama.prompt_seen()
            turns.append(
                {
                    "evaluated": evaluated_after - evaluated,
                    "cached": cached_after - cached,
                    "answer": int(llama.counters()["tokens_predicted_total"] - predicted),
                }
            )
    return turns


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# proxy_app in front of a real engine (llama-server, SmolLM2-135M) vs the engine directly",
        "",
        f"{results['date']} — {results['machine']}. Part 1: the same short conversation "
        f"(greedy, ≤32 tokens), streamed, {results['rounds']} rounds alternating the targets "
        "after one warm-up each; medians. The engine's prompt is in its KV cache after the "
        "warm-up, so the times are proxy_app's and the engine's own overhead plus generation.",
        "",
        "| target | TTFT ms | total ms | output tokens/s | proxy_app CPU ms/req "
        "| engine CPU ms/req |",
        "|---|---|---|---|---|---|",
    ]
    for target, row in results["latency"].items():
        lines.append(
            f"| {target} | {row['ttft_ms']:.1f} | {row['total_ms']:.1f} | "
            f"{row['tokens_per_s']:.1f} | {row['proxy_cpu_ms']:.1f} | {row['engine_cpu_ms']:.1f} |"
        )
    ours, theirs = results["latency"]["proxy_app"], results["latency"]["engine-anthropic"]
    lines += [
        "",
        f"proxy_app adds {ours['ttft_ms'] - theirs['ttft_ms']:+.1f} ms to the first token and "
        f"{ours['total_ms'] - theirs['total_ms']:+.1f} ms to the whole answer against the "
        "engine's own Anthropic endpoint (three calls to the engine instead of one: "
        "/apply-template, /tokenize, /v1/completions), and costs "
        f"{ours['proxy_cpu_ms']:.1f} ms of CPU per request; CPU is a mean of 10 ms ticks.",
    ]
    lines += [
        "",
        'Part 2: a real Claude Code session (the pinned CLI: `claude -p "say hi"`, then '
        "`claude -p --continue` twice; answers capped at 48 tokens with "
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS, as the tiny model may write until the window is full) "
        "through proxy_app; per turn, summed over the turn's requests (Claude Code continues an "
        "answer cut at its cap in further requests), the engine's own count of the prompt tokens "
        "it evaluated and those it took from its KV cache (llama-server's /metrics), and the "
        "tokens it generated. A turn should evaluate only what the previous requests did not "
        "already hold: the new user words, the turn markers, and whatever of an answer did not "
        "re-tokenize as generated.",
        "",
        "| route | turn | prompt tokens (its requests) | from KV cache | evaluated "
        "| answer tokens |",
        "|---|---|---|---|---|---|",
    ]
    for route, turns in results["sessions"].items():
        for i, turn in enumerate(turns, 1):
            prompt = turn["evaluated"] + turn["cached"]
            lines.append(
                f"| {route} | {i} | {prompt} | {turn['cached']} | {turn['evaluated']} | "
                f"{turn['answer']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="requests per target (part 1)")
    parser.add_argument(
        "--no-session", action="store_true", help="skip part 2 (Claude Code); keep the last"
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU, load {load[0]:.2f} / {load[1]:.2f} at the start",
        "rounds": args.rounds,
        "sessions": {},
    }
    if args.no_session and (RESULTS / "engine.json").is_file():  # keep the last sessions
        results["sessions"] = json.loads((RESULTS / "engine.json").read_text())["sessions"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_llama_server(aliases=(SMOLLM2, QWEN_ALIAS)) as llama,
    ):
        settings = {"PROXY_ENGINE": "openai", "PROXY_ENGINE_URL": llama.url}
        routes = {"SmolLM2 (engine's template)": SMOLLM2, "qwen2.5 (proxy_app's)": QWEN_ALIAS}
        proxy = servers.start_proxy(
            Path(tmp), "proxy", "", API_KEY, settings={**settings, "PROXY_DEFAULT_MODEL": SMOLLM2}
        )
        try:
            results["latency"] = latency(llama, proxy, args.rounds)
            if not args.no_session:
                for route, model in routes.items():
                    results["sessions"][route] = session(llama, proxy, model)
        finally:
            proxy.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "engine.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
