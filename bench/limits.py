"""`python -m bench.limits` (`make bench-limits`): what issue 12's hardening costs, before/after.

Two proxy_app servers behind the same Ollama API double: this tree's (`after`: protocol limits,
body read against the limit, nesting checks, the stream's status wait) and proxy_app as it was
at BASELINE_REF (`before`, exported with `git archive`). Requests alternate between the two
(ABAB…, the order flipped every round) on one keep-alive connection each, so the noise of this
shared machine falls on both alike. Cases: the captured Claude Code request (49 KB),
non-streaming and streaming, at concurrency 1. Results: bench/results/limits.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import report, servers
from bench.__main__ import API_KEY, REPLY, RESULTS, client_headers, compact, load_request

# main just before issue 12's branch was merged (the last commit without the limits).
BASELINE_REF = "3331453"


def timed(client: httpx.Client, body: bytes, headers: dict[str, str], stream: bool) -> tuple:
    """(total ms, first-byte ms) of one request; raises when the answer is incomplete."""
    started = time.perf_counter()
    first = None
    with client.stream("POST", "/v1/messages", content=body, headers=headers) as response:
        data = b""
        for chunk in response.iter_bytes():
            if first is None:
                first = time.perf_counter()
            data += chunk
    ended = time.perf_counter()
    expect = b"message_stop" if stream else b'"stop_reason"'
    if response.status_code != 200 or expect not in data:
        raise RuntimeError(f"{response.status_code}: {data[:300]!r}")
    return (ended - started) * 1000, ((first or ended) - started) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)], 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    request = load_request()
    headers = client_headers(API_KEY)
    rows: list[dict[str, Any]] = []
    pairs: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="llm-bench-limits-") as tmp:
        workdir = Path(tmp)
        base = servers.export_proxy_app(args.baseline, workdir / "baseline")
        double = servers.start_double(workdir, REPLY)
        procs = {
            "after": servers.start_proxy(workdir, "proxy_app-after", double.url, API_KEY),
            "before": servers.start_proxy(
                workdir, "proxy_app-before", double.url, API_KEY, source=base
            ),
        }
        try:
            slash = {
                name: httpx.post(proc.url + "/v1/messages/", content=b"{}").status_code
                for name, proc in procs.items()
            }
            clients = {
                name: httpx.Client(base_url=proc.url, timeout=60) for name, proc in procs.items()
            }
            for mode, stream in (("non-stream", False), ("stream", True)):
                body = compact({**request, "stream": stream})
                samples: dict[str, list[tuple[float, float]]] = {name: [] for name in procs}
                cpu = {name: proc.cpu_seconds() for name, proc in procs.items()}
                for i in range(args.warmup + args.requests):
                    order = ["after", "before"] if i % 2 else ["before", "after"]
                    for name in order:
                        sample = timed(clients[name], body, headers, stream)
                        if i >= args.warmup:
                            samples[name].append(sample)
                for name, proc in procs.items():
                    totals = [s[0] for s in samples[name]]
                    firsts = [s[1] for s in samples[name]]
                    rows.append(
                        {
                            "target": name,
                            "mode": mode,
                            "requests": len(totals),
                            "p50_ms": percentile(totals, 0.5),
                            "p90_ms": percentile(totals, 0.9),
                            "p99_ms": percentile(totals, 0.99),
                            "ttfb_p50_ms": percentile(firsts, 0.5) if stream else None,
                            "mean_ms": round(statistics.fmean(totals), 3),
                            "cpu_ms_per_req": round(
                                (proc.cpu_seconds() - cpu[name])
                                * 1000
                                / (args.warmup + args.requests),
                                3,
                            ),
                        }
                    )
                paired = [
                    a[0] - b[0] for a, b in zip(samples["after"], samples["before"], strict=True)
                ]
                pairs[mode] = round(statistics.median(paired), 3)
            for client in clients.values():
                client.close()
        finally:
            for proc in procs.values():
                proc.stop()
            double.stop()
    return {"rows": rows, "paired_median_diff_ms": pairs, "trailing_slash_status": slash}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    rows = results["rows"]
    out = [
        "# Cost of issue 12's limits: proxy_app before/after, same run",
        "",
        f"{results['date']} — {m['nproc']} CPU ({m['cpu_model']}), kernel {m['kernel']}; load "
        f"average {' / '.join(f'{x:.2f}' for x in m['load_avg'])} at the start. `before`: "
        f"proxy_app at `{results['baseline']}`; `after`: this tree. {results['requests']} "
        f"requests per case at c=1 after {results['warmup']} warm-up, alternating between the "
        "two servers; the captured Claude Code request (49 KB) against the Ollama API double. "
        f"`POST /v1/messages/` answered {results['trailing_slash_status']} (before: redirect; "
        "after: 404), which shows each server runs the code it claims to.",
        "",
        "| mode | target | p50 ms | p90 ms | p99 ms | TTFB p50 ms | CPU ms/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ttfb = "–" if row["ttfb_p50_ms"] is None else f"{row['ttfb_p50_ms']:.2f}"
        out.append(
            f"| {row['mode']} | {row['target']} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {ttfb} | {row['cpu_ms_per_req']:.2f} |"
        )
    out += [
        "",
        "| mode | p50 after − before (ms) | median of paired differences (ms) "
        "| CPU after − before (ms/req) |",
        "|---|---|---|---|",
    ]
    for mode, cost in results["cost"].items():
        paired = results["paired_median_diff_ms"][mode]
        out.append(
            f"| {mode} | {cost['p50_ms']:+.2f} | {paired:+.2f} | {cost['cpu_ms_per_req']:+.2f} |"
        )
    out += [
        "",
        "Paired differences: request i to `after` minus request i to `before`, sent back to back;",
        "their median is less sensitive to the machine's load drifting during the run.",
    ]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.limits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--baseline", default=BASELINE_REF, help="git ref of the `before` code")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine_info(),
        "baseline": args.baseline,
        "requests": args.requests,
        "warmup": args.warmup,
        **run(args),
    }
    by = {(r["target"], r["mode"]): r for r in results["rows"]}
    results["cost"] = {
        mode: {
            metric: round(by["after", mode][metric] - by["before", mode][metric], 3)
            for metric in ("p50_ms", "cpu_ms_per_req")
        }
        for mode in ("non-stream", "stream")
    }
    text = markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "limits.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "limits.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
