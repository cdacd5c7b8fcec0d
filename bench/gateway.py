"""`python -m bench.gateway`: what the gateway costs, and what session affinity saves.

1. Added latency: Claude Code's captured first request (non-streaming, with a session id)
   straight to proxy_app and through the gateway's HAProxy (one host: the same proxy_app), at
   concurrency 1 and 16, in the same run, against the Ollama API double in its own process.
2. Affinity vs round robin, simulated: two hosts, each proxy_app in front of a KVCacheDouble
   (bench/kv_double.py: one slot per host, prefill for the unshared prompt part, decode per
   token, RTX 4090 rates for a 7B Q4 model). K concurrent Claude Code-shaped sessions (the
   captured first request with its own working directory, then turns adding a Read tool call and
   its result) are replayed through (a) a consistent hash by session id ("affinity", the
   gateway's routing before issue 23), (b) `balance roundrobin`, (c) no session id (least
   busy), (d) the gateway as configured: least busy, then sticky (a stick table on the session
   id), (e) the consistent hash with bounded load. Reported: total prefill seconds and mean
   session wall time, as ratios to (a).
Results: bench/results/gateway.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime
import json
import random
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench import report, servers
from bench.kv_double import KVCacheDouble
from bench.load import Case, run_case
from devkit.ports import free_port
from fleet.haproxy import Backend, GatewayConfig, HAProxy, check_config, write_config

ROOT = servers.ROOT
RESULTS = ROOT / "bench" / "results"
FIXTURE = ROOT / "tests" / "fixtures" / "claude_code" / "first_request.json"
API_KEY = "sk-bench-key"
SESSION_HEADER = "X-Claude-Code-Session-Id"
# The gateway's consistent hash by session id, as it routed before issue 23 (weight 100: 1,600
# points per host on the ring, so random session ids split evenly).
CONSISTENT_HASH = ("balance hdr(X-Claude-Code-Session-Id)\n    hash-type consistent\n"
                   "    default-server weight 100")
# (name, routing lines replacing by_session's own, whether requests carry the session id)
MODES = (
    ("affinity", CONSISTENT_HASH, True),
    ("round robin", "balance roundrobin", True),
    ("least busy (no session id)", None, False),
    # The gateway's routing since issue 23: each new session on the least busy host, kept there
    # with a stick table.
    ("least busy, then sticky", None, True),
    # The consistent hash with bounded load: no host takes more than 125% of the average number
    # of requests in flight; past it a session goes to the next host on the ring.
    ("affinity, bounded load 125%", CONSISTENT_HASH + "\n    hash-balance-factor 125", True),
)
# by_session's routing lines in fleet/templates/haproxy.cfg.j2, which a mode replaces.
GATEWAY_ROUTING = re.compile(
    r"^    balance leastconn\n    stick-table [^\n]*\n    stick on [^\n]*$", re.M)
# Simulated seconds between a session's answer and its next request (the tool runs, Claude Code
# reads the result), drawn per turn: this also keeps sessions from moving in lock step.
THINK_S = (0.5, 4.0)
REPLY = "Hi! I can help with this repository. What would you like me to do first today?"


def first_request() -> dict[str, Any]:
    return dict(json.loads(FIXTURE.read_text()))


def start_gateway(workdir: Path, ports: list[int], routing: str | None = None) -> HAProxy:
    """HAProxy with the gateway's config for these proxy_app ports (optionally with other
    routing lines in by_session), checked with `haproxy -c`."""
    cfg = GatewayConfig(hosts=[Backend(f"host-{i}", p) for i, p in enumerate(ports)],
                        port=free_port(), stats_port=free_port())
    path = write_config(cfg, workdir)
    if routing is not None:
        text, found = GATEWAY_ROUTING.subn("    " + routing, path.read_text())
        if found != 1:
            raise RuntimeError("by_session's routing lines changed in the template")
        path.write_text(text)
        check_config(path)
    return HAProxy(path, cfg).start()


# --------------------------------------------------------------------------- added latency


def added_latency(workdir: Path, requests_c1: int, requests_c16: int) -> list[dict[str, Any]]:
    double = servers.start_double(workdir, REPLY)
    proxy = servers.start_proxy(workdir, "proxy_app", double.url, API_KEY)
    haproxy = start_gateway(workdir, [int(proxy.url.rsplit(":", 1)[1])])
    body = json.dumps({**first_request(), "stream": False}).encode()
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json",
               SESSION_HEADER: str(uuid.uuid4())}
    rows = []
    try:
        for concurrency, count in ((1, requests_c1), (16, requests_c16)):
            for target, url in (("direct", proxy.url),
                                ("gateway", f"http://127.0.0.1:{haproxy.cfg.port}")):
                case = Case(url=url + "/v1/messages", body=body, headers=headers,
                            requests=count, concurrency=concurrency, warmup=10,
                            expect=b'"stop_reason"')
                summary = asyncio.run(run_case(case)).summary()
                row = {"target": target, "concurrency": concurrency, **summary}
                rows.append(row)
                print(f"{target:8} c={concurrency:<3} p50 {summary['latency_ms'].get('p50')} ms "
                      f"p90 {summary['latency_ms'].get('p90')} ms errors {summary['errors']}",
                      flush=True)
    finally:
        haproxy.stop()
        proxy.stop()
        double.stop()
    return rows


# --------------------------------------------------------------------------- affinity simulation


def session_turns(index: int, turns: int, result_bytes: int) -> list[dict[str, Any]]:
    """The request bodies of one Claude Code-shaped session, in order."""
    base = json.loads(FIXTURE.read_text().replace("/tmp/cc-work", f"/tmp/cc-work-{index}"))
    bodies, history = [], []
    for turn in range(turns):
        body = copy.deepcopy(base)
        body["messages"] = base["messages"] + history
        body["stream"] = True
        bodies.append(body)
        call = f"toolu_{index:02d}{turn:02d}" + "0" * 20
        path = f"/tmp/cc-work-{index}/src/module_{turn}.py"
        lines = [f"def step_{index}_{turn}_{n}(value):  # line {n}\n    return value + {n}\n"
                 for n in range(result_bytes // 60)]
        history = history + [
            {"role": "assistant", "content": [{"type": "tool_use", "id": call, "name": "Read",
                                               "input": {"file_path": path}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call,
                                          "content": "".join(lines)}]},
        ]
    return bodies


def replay(
    url: str, sessions: list[list[dict[str, Any]]], ids: list[str | None],
    thinks: list[list[float]],
) -> list[float]:
    """Run the sessions concurrently, turns in order with a pause (real seconds) after each."""
    walls = [0.0] * len(sessions)
    errors: list[str] = []

    def run(i: int) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        if ids[i] is not None:
            headers[SESSION_HEADER] = str(ids[i])
        started = time.perf_counter()
        with httpx.Client(base_url=url, timeout=120) as client:
            for body, pause in zip(sessions[i], thinks[i], strict=True):
                with client.stream("POST", "/v1/messages", json=body, headers=headers) as resp:
                    text = b"".join(resp.iter_bytes())
                if resp.status_code != 200 or b"message_stop" not in text:
                    errors.append(f"session {i}: HTTP {resp.status_code} {text[-300:]!r}")
                time.sleep(pause)
        walls[i] = time.perf_counter() - started

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sessions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(errors[0])
    return walls


def affinity_simulation(
    workdir: Path, args: argparse.Namespace, k: int, entries: int
) -> dict[str, Any]:
    """Replay ``k`` sessions per seed through each routing; sum the doubles' counters."""
    doubles = [KVCacheDouble(args.time_scale, cache_entries=entries,
                             models=["qwen2.5-coder:7b"], default_num_ctx=32768)
               for _ in range(2)]
    for double in doubles:
        double.start()
    proxies = [servers.start_proxy(workdir, f"proxy_app-{i}", d.url, API_KEY)
               for i, d in enumerate(doubles)]
    ports = [int(p.url.rsplit(":", 1)[1]) for p in proxies]
    sessions = [session_turns(i, args.turns, args.result_bytes) for i in range(k)]
    modes: dict[str, Any] = {name: {"prefill_s": 0.0, "decode_s": 0.0, "prefill_tokens": 0,
                                    "prompt_tokens": 0, "walls": [], "placement": []}
                             for name, _, _ in MODES}
    try:
        for seed in range(args.seeds):
            rng = random.Random(seed)
            ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in sessions]
            # Claude Code runs each tool and reads its result before the next turn.
            thinks = [[rng.uniform(*THINK_S) * args.time_scale for _ in range(args.turns)]
                      for _ in sessions]
            for name, routing, send_ids in MODES:
                for double in doubles:
                    double.reset_kv()
                haproxy = start_gateway(workdir, ports, routing)
                try:
                    walls = replay(f"http://127.0.0.1:{haproxy.cfg.port}", sessions,
                                   list(ids) if send_ids else [None] * len(ids), thinks)
                finally:
                    haproxy.stop()
                row = modes[name]
                row["prefill_s"] += sum(d.prefill_seconds for d in doubles)
                row["decode_s"] += sum(d.decode_seconds for d in doubles)
                row["prefill_tokens"] += sum(d.prefill_tokens for d in doubles)
                row["prompt_tokens"] += sum(d.prompt_tokens for d in doubles)
                row["walls"] += [w / args.time_scale for w in walls]
                row["placement"].append([d.chats for d in doubles])
                print(f"{k}x{entries} seed {seed} {name:28} prefill {row['prefill_s']:.1f} s "
                      f"requests per host {[d.chats for d in doubles]}", flush=True)
    finally:
        for proxy in proxies:
            proxy.stop()
        for double in doubles:
            double.stop()
    for row in modes.values():
        walls = row.pop("walls")
        row["session_wall_s"] = round(sum(walls) / len(walls), 2)
        row["prefill_s"] = round(row["prefill_s"], 2)
        row["decode_s"] = round(row["decode_s"], 2)
    base = modes["affinity"]
    for row in modes.values():
        row["prefill_ratio"] = round(row["prefill_s"] / base["prefill_s"], 2)
        row["wall_ratio"] = round(row["session_wall_s"] / base["session_wall_s"], 2)
    return modes


# --------------------------------------------------------------------------- report


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# Gateway bench — {results['date']}", "",
             f"Machine: {results['machine']['nproc']} CPU ({results['machine']['cpu_model']}), "
             f"load average {results['machine']['load_avg']} at the start; "
             f"run took {results['bench_seconds']} s.", "",
             "## Added latency (Claude Code's first request, non-streaming, one host)", "",
             "| target | c | ok/err | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for row in results["latency"]:
        ms = row["latency_ms"]
        lines.append(f"| {row['target']} | {row['concurrency']} | {row['ok']}/{row['errors']} | "
                     f"{ms.get('p50')} | {ms.get('p90')} | {ms.get('p99')} |")
    for c, added in results["added_p50_ms"].items():
        lines.append(f"\nGateway adds {added} ms p50 at c={c}.")
    sim = results["simulation"]
    lines += ["", "## Affinity vs round robin (simulated KV cache, 2 hosts)", "",
              f"{sim['settings']}", "",
              "| K sessions × cached prompts per host | routing | prefill s | prefill tokens | "
              "decode s | mean session wall s | prefill × | wall × | requests per host, each run |",
              "|---|---|---|---|---|---|---|---|---|"]
    for scenario, modes in sim["scenarios"].items():
        for mode, row in modes.items():
            lines.append(f"| {scenario} | {mode} | {row['prefill_s']} | {row['prefill_tokens']} | "
                         f"{row['decode_s']} | {row['session_wall_s']} | {row['prefill_ratio']} | "
                         f"{row['wall_ratio']} | {row['placement']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests-c1", type=int, default=150)
    parser.add_argument("--requests-c16", type=int, default=300)
    parser.add_argument("--scenarios", default="1x1,2x1,4x1,4x2",
                        help="KxE list: K concurrent sessions, E cached prompts per host")
    parser.add_argument("--turns", type=int, default=6, help="requests per session")
    parser.add_argument("--result-bytes", type=int, default=4000,
                        help="size of each turn's Read result")
    parser.add_argument("--seeds", type=int, default=3,
                        help="runs with different session ids and pauses, summed")
    parser.add_argument("--time-scale", type=float, default=0.05,
                        help="real seconds per simulated second")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine_info(),
    }
    with tempfile.TemporaryDirectory(prefix="llm-bench-gateway-") as tmp:
        results["latency"] = added_latency(Path(tmp), args.requests_c1, args.requests_c16)
        p50 = {(r["target"], r["concurrency"]): r["latency_ms"]["p50"] for r in results["latency"]}
        results["added_p50_ms"] = {c: round(p50[("gateway", c)] - p50[("direct", c)], 3)
                                   for c in (1, 16)}
        results["simulation"] = {
            "settings": (f"{args.seeds} runs of K concurrent sessions × "
                         f"{args.turns} turns on 2 hosts; each turn adds a Read of "
                         f"{args.result_bytes} bytes; {THINK_S[0]}–{THINK_S[1]} s between "
                         f"turns; prefill 7980 tok/s, decode 152.6 tok/s "
                         f"(bench/kv_double.py); time scale {args.time_scale}"),
            "scenarios": {
                scenario: affinity_simulation(Path(tmp), args, *map(int, scenario.split("x")))
                for scenario in args.scenarios.split(",")
            },
        }
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gateway.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (args.out / "gateway.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
