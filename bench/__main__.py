"""`python -m bench` (`make bench`): proxy_app vs no proxy vs LiteLLM, one run, on loopback.

Targets, all behind the same Ollama API double (its own process, ollama_double/):
  direct          POST /api/chat on the double with what proxy_app sends upstream (the floor)
  proxy_app       python -m proxy_app, response cache off
  proxy_app+hit   python -m proxy_app with a TLS-only redis-server; every measured request hits
  litellm         the LiteLLM proxy (bench/.litellm-venv), /v1/messages -> ollama_chat/...
Each target: the captured Claude Code request (tests/fixtures/claude_code/first_request.json),
non-streaming and streaming, at concurrency 1 and 16. Results: bench/results/latest.{json,md}
plus a dated copy, and charts of them (bench/charts.py: bench/results/*.png). Also included:
bench/cache_hit.py's ResponseCache.get() micro-benchmark, bench/count_tokens.py's cost of
counting and guarding the captured request (exact vs estimate), and
bench/results/deploy_times.json when present (written by `make bench-deploy`; any JSON object, e.g.
{"first_run_s": 512.3, "rerun_s": 41.0, "inventory": "inventories/local.py",
"date": "2026-01-01T00:00:00+00:00"}), copied as is into the results.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import charts, report, servers
from bench.load import Case, Outcome, run_case

ROOT = servers.ROOT
RESULTS = ROOT / "bench" / "results"
FIXTURE = ROOT / "tests" / "fixtures" / "claude_code" / "first_request.json"
HEADERS_FIXTURE = ROOT / "tests" / "fixtures" / "claude_code" / "headers.json"
API_KEY = "sk-bench-key"
MODEL = "qwen2.5-coder:7b"
# What the double answers to every /api/chat call: 24 words, so a stream is 24 NDJSON chunks
# plus the final one (a short Claude Code style reply).
REPLY = (
    "Hi! I can help with this repository: read files, run the tests, explain code, or make "
    "changes. What would you like me to do first today?"
)
TARGETS = ("direct", "proxy_app", "proxy_app+hit", "litellm")
TARGET_NOTES = {
    "direct": "POST /api/chat on the double, the body proxy_app sends upstream (the floor)",
    "proxy_app": "python -m proxy_app, 1 worker, PROXY_LOG_LEVEL=warning, cache off",
    "proxy_app+hit": "python -m proxy_app + redis-server over TLS, PROXY_CACHE_MODE=all; "
    "every measured request is an x-cache HIT",
    "litellm": "LiteLLM proxy, 1 worker, /v1/messages -> ollama_chat/qwen2.5-coder:7b; "
    "`thinking` is dropped from the request for LiteLLM only (LiteLLM forwards it as Ollama's "
    "`think`, and Ollama answers 400 'does not support thinking' for this model)",
}


def load_request() -> dict[str, Any]:
    data = json.loads(FIXTURE.read_text())
    return data.get("body", data) if isinstance(data, dict) else data


def client_headers(key: str) -> dict[str, str]:
    """Claude Code's captured headers with our key (no Content-Length/compression)."""
    raw = json.loads(HEADERS_FIXTURE.read_text()) if HEADERS_FIXTURE.exists() else {}
    drop = {"authorization", "content-length", "accept-encoding", "connection", "host"}
    headers = {k: v for k, v in raw.items() if k.lower() not in drop}
    headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    return headers


def upstream_body(request: dict[str, Any]) -> dict[str, Any]:
    """The /api/chat body proxy_app sends for this request (proxy_app.translate)."""
    from proxy_app.api.anthropic import MessagesRequest, parse_body
    from proxy_app.config import Settings
    from proxy_app.translate import to_ollama_request

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    parsed = parse_body(json.dumps(request).encode(), MessagesRequest)
    return to_ollama_request(
        parsed,
        model=MODEL,
        num_ctx=settings.num_ctx,
        keep_alive=settings.keep_alive,
        think=False,
    ).payload


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def build_cases(
    target: str, url: str, request: dict[str, Any], args: argparse.Namespace
) -> list[tuple[str, int, Case]]:
    """[(mode, concurrency, Case)] for one target."""
    scale = args.litellm_scale if target == "litellm" else 1.0
    out = []
    for mode, stream in (("non-stream", False), ("stream", True)):
        if target == "direct":
            body = {**upstream_body(request), "stream": stream}
            path, headers = "/api/chat", {"Content-Type": "application/json"}
            first_token = b'"done": false' if stream else None
            expect, expect_header = b'"done": true', None
        else:
            body = {**copy.deepcopy(request), "stream": stream}
            if target == "litellm":
                body.pop("thinking", None)
            path, headers = "/v1/messages", client_headers(API_KEY)
            first_token = b"text_delta" if stream else None
            expect = b"message_stop" if stream else b'"stop_reason"'
            expect_header = ("x-cache", "HIT") if target == "proxy_app+hit" else None
        for concurrency in (1, 16):
            count = args.requests_c1 if concurrency == 1 else args.requests_c16
            out.append(
                (
                    mode,
                    concurrency,
                    Case(
                        url=url + path,
                        body=compact(body),
                        headers=headers,
                        requests=max(20, int(count * scale)),
                        concurrency=concurrency,
                        warmup=args.warmup,
                        time_limit=args.time_limit,
                        first_token=first_token,
                        expect=expect,
                        expect_header=expect_header,
                    ),
                )
            )
    return out


def measure(
    target: str, server: servers.Proc, double: servers.Proc, cases: list[tuple[str, int, Case]]
) -> list[dict[str, Any]]:
    rows = []
    for mode, concurrency, case in cases:
        server.reset_peak_rss()
        marks: dict[str, float] = {}

        def on_measure(marks: dict[str, float] = marks) -> None:
            marks["cpu"] = server.cpu_seconds()
            marks["double_cpu"] = double.cpu_seconds()

        outcome: Outcome = asyncio.run(run_case(case, on_measure))
        summary = outcome.summary()
        total = outcome.errors + len(outcome.latencies)
        if marks and total:
            summary["server_cpu_ms_per_req"] = round(
                (server.cpu_seconds() - marks["cpu"]) * 1000 / total, 3
            )
            if server is not double:
                summary["double_cpu_ms_per_req"] = round(
                    (double.cpu_seconds() - marks["double_cpu"]) * 1000 / total, 3
                )
        summary["peak_rss_mb"] = round(server.peak_rss_kb() / 1024, 1)
        summary["server_processes"] = len(server.pids())
        row = {
            "target": target,
            "mode": mode,
            "concurrency": concurrency,
            "requests": case.requests,
            "body_bytes": len(case.body),
            **summary,
        }
        rows.append(row)
        print(report.row_line(row), flush=True)
    return rows


def run_target(
    target: str,
    workdir: Path,
    double: servers.Proc,
    request: dict[str, Any],
    args: argparse.Namespace,
    info: dict[str, Any],
) -> list[dict[str, Any]]:
    redis = None
    server: servers.Proc | None = None
    try:
        if target == "direct":
            server = double
        elif target == "proxy_app":
            server = servers.start_proxy(
                workdir, "proxy_app", double.url, API_KEY, workers=args.workers
            )
        elif target == "proxy_app+hit":
            from devkit.redis_tls import RedisTLSServer, make_certs

            redis = RedisTLSServer(make_certs(workdir / "certs"), workdir / "redis")
            redis.start()
            server = servers.start_proxy(
                workdir,
                "proxy_app-cache",
                double.url,
                API_KEY,
                workers=args.workers,
                redis_url=redis.url,
                redis_ca_file=str(redis.certs.ca_file),
            )
        elif target == "litellm":
            info["litellm_version"] = servers.ensure_litellm(
                workdir / "litellm-install.log", install=not args.no_install
            )
            server = servers.start_litellm(workdir, double.url, request["model"], API_KEY)
        assert server is not None
        info.setdefault("idle_rss_mb", {})[target] = round(server.rss_kb() / 1024, 1)
        return measure(target, server, double, build_cases(target, server.url, request, args))
    finally:
        if server is not None and server is not double:
            server.stop()
        if redis is not None:
            redis.stop()


def profile_proxy(
    workdir: Path, double: servers.Proc, request: dict[str, Any], args: argparse.Namespace
) -> str:
    """cProfile proxy_app (cache off) over non-stream and stream requests at concurrency 1."""
    prof = workdir / "proxy.prof"
    server = servers.start_proxy(
        workdir, "proxy_app-profiled", double.url, API_KEY, profile_to=prof
    )
    try:
        for _mode, concurrency, case in build_cases("proxy_app", server.url, request, args):
            if concurrency == 1:
                asyncio.run(run_case(case))
    finally:
        server.stop(timeout=30)
    deadline = time.monotonic() + 10
    while not prof.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not prof.exists():
        return "(no profile written)"
    return report.profile_text(prof, calls=2 * (args.requests_c1 + max(args.warmup, 1)))


def cache_get_micro(iterations: int = 1000) -> list[str]:
    """Run bench/cache_hit.py (ResponseCache.get() alone) and keep its result lines."""
    return micro("cache_hit.py", iterations)


def micro(script: str, iterations: int) -> list[str]:
    """Run one of bench/'s micro-benchmark scripts and keep its result lines."""
    import subprocess
    import sys

    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / script), "--iterations", str(iterations)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return [f"failed: {exc}"]
    if done.returncode != 0:
        return [f"failed ({done.returncode}): {done.stderr.strip()[-300:]}"]
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests-c1", type=int, default=200)
    parser.add_argument("--requests-c16", type=int, default=400)
    parser.add_argument(
        "--litellm-scale",
        type=float,
        default=1.0,
        help="fraction of the request counts used for LiteLLM (slower)",
    )
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=60.0,
        help="seconds per case before it stops issuing requests",
    )
    parser.add_argument("--workers", type=int, default=1, help="PROXY_WORKERS for proxy_app")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help=f"comma list out of {','.join(TARGETS)}"
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not create bench/.litellm-venv when it is missing",
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="cProfile proxy_app after the run (auto: when a target is missed)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    now = datetime.datetime.now(datetime.timezone.utc)
    request = load_request()
    info: dict[str, Any] = {}
    results: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "machine": report.machine_info(),
        "versions": report.versions(),
        "settings": {
            "requests_c1": args.requests_c1,
            "requests_c16": args.requests_c16,
            "litellm_scale": args.litellm_scale,
            "warmup": args.warmup,
            "time_limit_s": args.time_limit,
            "proxy_workers": args.workers,
            "request": str(FIXTURE.relative_to(ROOT)),
            "reply_words": len(REPLY.split()),
            "reply": REPLY,
        },
        "targets": {t: TARGET_NOTES[t] for t in targets},
        "rows": [],
        "failures": {},
    }
    print(report.header_line(), flush=True)
    with tempfile.TemporaryDirectory(prefix="llm-bench-") as tmp:
        workdir = Path(tmp)
        double = servers.start_double(workdir, REPLY)
        try:
            for target in targets:
                try:
                    results["rows"] += run_target(target, workdir, double, request, args, info)
                except Exception as exc:  # record and go on with the other targets
                    reason = f"{type(exc).__name__}: {exc}"
                    results["failures"][target] = reason[:2000]
                    print(f"{target}: FAILED: {reason[:600]}", flush=True)
                    log = workdir / "litellm.log"
                    if target == "litellm" and log.exists():
                        shutil.copy(log, args.out / "litellm-failure.log")
            if "proxy_app+hit" in targets:
                results["cache_get_micro"] = cache_get_micro()
            results["count_tokens_micro"] = micro("count_tokens.py", 2000)
            results["ratios"], results["target_checks"] = report.ratios(results["rows"])
            missed = any(
                c.get("met") is False
                for c in results["target_checks"]
                if c["name"].startswith("proxy_app")
            )
            if args.profile == "always" or (args.profile == "auto" and missed):
                print("profiling proxy_app (cProfile) ...", flush=True)
                results["profile"] = profile_proxy(workdir, double, request, args)
        finally:
            double.stop()
    results["versions"]["litellm"] = info.get("litellm_version") or servers.litellm_version()
    results["idle_rss_mb"] = info.get("idle_rss_mb", {})
    deploy = args.out / "deploy_times.json"
    if deploy.exists():
        try:
            results["deploy_times"] = json.loads(deploy.read_text())
        except ValueError as exc:
            results["deploy_times"] = {"error": f"unreadable {deploy.name}: {exc}"}
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_avg_end"] = list(os.getloadavg())

    markdown = report.markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    for name in ("latest", stamp):
        (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / f"{name}.md").write_text(markdown)
    print()
    print(markdown)
    print(f"wrote {args.out / 'latest.json'}, {args.out / 'latest.md'} and {stamp}.*")
    drawn = charts.render(results, args.out)
    print(f"drew {', '.join(str(path) for path in drawn)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
