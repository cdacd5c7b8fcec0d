"""Machine/version info, the ratios and targets computed from one run, and the Markdown report."""

from __future__ import annotations

import importlib.metadata
import io
import os
import platform
import pstats
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_SHORT = re.compile(r"/\S*/(?:site-packages|python3\.\d+)/")
# Targets (reported, not asserted).
OVERHEAD_TARGET_MS = 1.5
CACHE_HIT_TARGET_MS = 3.0
THROUGHPUT_TARGET_X = 10.0


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "load_avg": list(os.getloadavg()),
    }


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    out["proxy_app"] = _version("llm-selfhost-proxy")
    for dist in ("fastapi", "uvicorn", "starlette", "pydantic", "httpx", "uvloop", "httptools",
                 "redis", "orjson"):
        out[dist] = _version(dist)
    server = shutil.which("redis-server")
    if server:
        try:
            text = subprocess.run([server, "--version"], capture_output=True, text=True,
                                  timeout=10).stdout
            out["redis-server"] = next(
                (w.split("=", 1)[1] for w in text.split() if w.startswith("v=")), text.strip())
        except (subprocess.SubprocessError, OSError):
            pass
    return out


def _get(row: dict[str, Any], metric: str, stat: str = "p50") -> float | None:
    value = row.get(metric, {}).get(stat)
    return float(value) if value is not None else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


COLUMNS = ("target", "mode", "c", "ok/err", "p50 ms", "p90 ms", "p99 ms", "TTFB p50",
           "TTFT p50", "req/s", "CPU ms/req", "double CPU ms/req", "peak RSS MB")


def cells(row: dict[str, Any]) -> list[str]:
    stream = row["mode"] == "stream"
    return [
        row["target"], row["mode"], str(row["concurrency"]), f"{row['ok']}/{row['errors']}",
        _fmt(_get(row, "latency_ms")), _fmt(_get(row, "latency_ms", "p90")),
        _fmt(_get(row, "latency_ms", "p99")),
        _fmt(_get(row, "ttfb_ms")) if stream else "–",
        _fmt(_get(row, "ttft_ms")) if stream else "–",
        _fmt(row.get("rps"), 1), _fmt(row.get("server_cpu_ms_per_req")),
        _fmt(row.get("double_cpu_ms_per_req")), _fmt(row.get("peak_rss_mb"), 1),
    ]


WIDTHS = (14, 10, 3, 8, 8, 8, 8, 9, 9, 8, 10, 10, 8)


def header_line() -> str:
    return " ".join(h[:w].rjust(w) if i > 1 else h.ljust(w)
                    for i, (h, w) in enumerate(zip(COLUMNS, WIDTHS, strict=True)))


def row_line(row: dict[str, Any]) -> str:
    line = " ".join(c.rjust(w) if i > 1 else c.ljust(w)
                    for i, (c, w) in enumerate(zip(cells(row), WIDTHS, strict=True)))
    if row.get("first_error"):
        line += f"   first error: {row['first_error'][:200]}"
    return line


def _find(rows: list[dict[str, Any]], target: str, mode: str, c: int) -> dict[str, Any] | None:
    for row in rows:
        if row["target"] == target and row["mode"] == mode and row["concurrency"] == c:
            return row if row.get("ok") else None
    return None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def ratios(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Overheads vs the floor, cache-hit latency, proxy_app vs LiteLLM throughput."""
    direct_ns = _find(rows, "direct", "non-stream", 1)
    direct_st = _find(rows, "direct", "stream", 1)
    proxy_ns = _find(rows, "proxy_app", "non-stream", 1)
    proxy_st = _find(rows, "proxy_app", "stream", 1)
    hit_ns = _find(rows, "proxy_app+hit", "non-stream", 1)
    hit_st = _find(rows, "proxy_app+hit", "stream", 1)

    def p50(row: dict[str, Any] | None, metric: str = "latency_ms") -> float | None:
        return _get(row, metric) if row else None

    out: dict[str, Any] = {
        # proxy_app always streams from Ollama; the non-streaming floor is the double answering
        # the same body with stream=false, the streamed floor its whole NDJSON stream.
        "proxy_overhead_nonstream_p50_ms": _diff(p50(proxy_ns), p50(direct_ns)),
        "proxy_overhead_nonstream_vs_streamed_floor_p50_ms": _diff(p50(proxy_ns), p50(direct_st)),
        "proxy_overhead_stream_total_p50_ms": _diff(p50(proxy_st), p50(direct_st)),
        "proxy_overhead_ttfb_p50_ms": _diff(p50(proxy_st, "ttfb_ms"), p50(direct_st, "ttfb_ms")),
        "proxy_overhead_ttft_p50_ms": _diff(p50(proxy_st, "ttft_ms"), p50(direct_st, "ttft_ms")),
        "cache_hit_nonstream_p50_ms": p50(hit_ns),
        "cache_hit_stream_p50_ms": p50(hit_st),
    }
    for mode in ("non-stream", "stream"):
        key = mode.replace("-", "")
        proxy = _find(rows, "proxy_app", mode, 16)
        lite = _find(rows, "litellm", mode, 16)
        direct = _find(rows, "direct", mode, 16)
        hit = _find(rows, "proxy_app+hit", mode, 16)
        if proxy and lite and lite.get("rps"):
            out[f"proxy_vs_litellm_rps_c16_{key}"] = round(proxy["rps"] / lite["rps"], 2)
        if proxy and direct and direct.get("rps"):
            out[f"proxy_vs_direct_rps_c16_{key}"] = round(proxy["rps"] / direct["rps"], 2)
        if hit and lite and lite.get("rps"):
            out[f"cache_hit_vs_litellm_rps_c16_{key}"] = round(hit["rps"] / lite["rps"], 2)

    def check(name: str, value: float | None, limit: float, higher: bool = False) -> dict[str, Any]:
        met = None if value is None else (value >= limit if higher else value <= limit)
        return {"name": name, "value": value, "target": f"{'≥' if higher else '≤'} {limit:g}",
                "met": met}

    checks = [
        check("proxy_app overhead, non-stream p50 (ms)", out["proxy_overhead_nonstream_p50_ms"],
              OVERHEAD_TARGET_MS),
        check("proxy_app overhead, TTFB p50 (ms)", out["proxy_overhead_ttfb_p50_ms"],
              OVERHEAD_TARGET_MS),
        check("proxy_app overhead, first token p50 (ms)", out["proxy_overhead_ttft_p50_ms"],
              OVERHEAD_TARGET_MS),
        check("proxy_app cache hit, non-stream p50 (ms)", out["cache_hit_nonstream_p50_ms"],
              CACHE_HIT_TARGET_MS),
        check("proxy_app cache hit, stream p50 (ms)", out["cache_hit_stream_p50_ms"],
              CACHE_HIT_TARGET_MS),
        check("proxy_app / LiteLLM req/s at c=16, non-stream (×)",
              out.get("proxy_vs_litellm_rps_c16_nonstream"), THROUGHPUT_TARGET_X, higher=True),
        check("proxy_app / LiteLLM req/s at c=16, stream (×)",
              out.get("proxy_vs_litellm_rps_c16_stream"), THROUGHPUT_TARGET_X, higher=True),
    ]
    return out, checks


def _stats_lines(stats: pstats.Stats, sort: str, limit: int, *restrict: Any) -> list[str]:
    stream = io.StringIO()
    stats.stream = stream  # type: ignore[attr-defined]
    stats.sort_stats(sort).print_stats(*restrict, limit)
    body = stream.getvalue().splitlines()
    start = next((i for i, line in enumerate(body) if "ncalls" in line), 0)
    return [_SHORT.sub("", line.replace(str(ROOT) + "/", ""))
            for line in body[start:] if line.strip()]


def profile_text(path: Path, calls: int, limit: int = 25) -> str:
    """proxy_app's hot spots from a cProfile dump: own time, then cumulative (proxy_app only)."""
    stats = pstats.Stats(str(path))
    lines = [f"cProfile of proxy_app over ~{calls} requests (non-stream + stream, c=1). cProfile "
             "adds a cost per Python call, so call-heavy code (per-character loops) is overstated;"
             " compare with the CPU ms/req column. By own time (tottime):"]
    lines += _stats_lines(stats, "tottime", limit)
    lines += ["", "proxy_app functions by cumulative time:"]
    lines += _stats_lines(stats, "cumulative", limit, r"proxy_app/")
    return "\n".join(lines)


def _loads(values: Any) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


def _failures(failures: dict[str, str] | None) -> list[str]:
    """The failed targets: one line each, then each one's whole story folded."""
    if not failures:
        return []
    out = ["", "## Failures", ""]
    out += [f"- **{t}**: {why.splitlines()[0] if why else ''}" for t, why in failures.items()]
    for t, why in failures.items():
        out += ["", f"<details><summary>{t}</summary>", "", "```", why, "```", "</details>"]
    return out


def _micro(results: dict[str, Any]) -> list[str]:
    """The in-process measurements and the idle RSS, those the run has."""
    out: list[str] = []
    micro = results.get("cache_get_micro")
    if micro:
        out += ["", "`bench/cache_hit.py` (ResponseCache.get() alone, in-process, ~50 KB entry "
                "over TLS): " + " ".join(micro)]
    counting = results.get("count_tokens_micro")
    if counting:
        out += ["", "`bench/count_tokens.py` (count + guard of the captured 49 KB request, "
                "in-process):", ""] + [f"- {line}" for line in counting]
    if results.get("idle_rss_mb"):
        out += ["", "Idle RSS after start (MB): " + ", ".join(
            f"{k} {val}" for k, val in results["idle_rss_mb"].items())]
    return out


def _deploy_times(deploy: Any) -> list[str]:
    """The sandbox deploy times `make bench-deploy` wrote (a table of runs), if any."""
    out = ["", "## Sandbox deploy times", ""]
    if deploy is None:
        out.append("No `bench/results/deploy_times.json` (written by `make bench-deploy`).")
    elif isinstance(deploy, dict) and isinstance(deploy.get("runs"), list):
        out += [
            f"{deploy.get('inventory', '')}, {deploy.get('machine', '')}, {deploy.get('date', '')}",
            "",
            "| hosts | fleet up (s) | first deploy (s) | re-run (s) | re-run changes |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {r['hosts']} | {r['fleet_up_s']} | {r['first_run_s']} | {r['rerun_s']} | "
            f"{r['rerun_changes']} |"
            for r in deploy["runs"]
        ]
    elif isinstance(deploy, dict):
        out += [f"- {k}: {val}" for k, val in deploy.items()]
    else:
        out.append(f"```\n{deploy}\n```")
    return out


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    v = results["versions"]
    s = results["settings"]
    out = [
        "# llm-selfhost bench: proxy_app vs no proxy vs LiteLLM",
        "",
        f"{results['date']} — {m['nproc']} CPU ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"kernel {m['kernel']}; run took {results.get('bench_seconds', '?')} s; load average "
        f"{_loads(m.get('load_avg'))} at the start, {_loads(m.get('load_avg_end'))} at the end "
        "(other processes on the machine add noise).",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        "",
        f"Request: `{s['request']}` (the captured Claude Code first request, ~49 KB), "
        f"non-streaming and streaming; the double answers every call with a "
        f"{s['reply_words']}-word reply ({s['reply_words']} NDJSON chunks + the final one). "
        f"{s['requests_c1']} requests at c=1 and {s['requests_c16']} at c=16 per case "
        f"(LiteLLM ×{s['litellm_scale']}), after {s['warmup']} warm-up requests. Everything "
        "(load generator, double, proxy, redis) shares the same cores on 127.0.0.1.",
        "",
        "Targets:",
    ]
    out += [f"- **{t}**: {note}" for t, note in results["targets"].items()]
    out += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(cells(row)) + " |" for row in results["rows"]]
    out += ["", "TTFB: first response-body byte; proxy_app sends `message_start` + `ping` once "
            "Ollama starts answering (at most PROXY_STREAM_WAIT later), so TTFT (first "
            "`text_delta`; first NDJSON chunk for direct) is the comparable streaming figure. "
            "CPU ms/req: CPU time of the server's process tree (and of the double) per "
            "measured request; peak RSS: VmHWM of the server's process "
            "tree during the case (reset before each case)."]
    out += _failures(results.get("failures"))
    out += ["", "## Ratios (same run)", ""]
    out += [f"- {k}: {_fmt(val, 3) if isinstance(val, float) else val}"
            for k, val in results.get("ratios", {}).items()]
    out += ["", "## Targets (reported, not asserted)", "", "| check | value | target | met |",
            "|---|---|---|---|"]
    for c in results.get("target_checks", []):
        met = {True: "yes", False: "**no**", None: "n/a"}[c["met"]]
        out.append(f"| {c['name']} | {_fmt(c['value'])} | {c['target']} | {met} |")
    out += _micro(results)
    out += _deploy_times(results.get("deploy_times"))
    if results.get("profile"):
        out += ["", "## proxy_app profile", "", "```", results["profile"], "```"]
    return "\n".join(out) + "\n"
