"""`python -m bench.limits` (`make bench-limits`): proxy_app before/after a change, same run.

Two proxy_app servers behind the same Ollama API double: this tree's (`after`) and proxy_app as
it was at `--baseline` (`before`, exported with `git archive`; default BASELINE_REF, just before
issue 12's limits). Requests alternate between the two (ABAB…, the order flipped every round)
on one keep-alive connection each, so the noise of this shared machine falls on both alike.
Cases: the captured Claude Code request (49 KB), non-streaming and streaming, at concurrency 1.
With `--cache` both servers use one TLS-only redis-server and the cases are a cache miss (each
request unique) non-streaming and streaming, and a streamed cache hit. Results:
bench/results/<name>.{json,md} (`--name`, default `limits`).
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
from devkit.redis_tls import RedisTLSServer, make_certs

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


# (mode, streamed, what makes a request's body unique: nothing, its server, or each request)
PLAIN_CASES = [("non-stream", False, ""), ("stream", True, "")]
CACHE_CASES = [
    ("miss non-stream", False, "request"),
    ("miss stream", True, "request"),
    ("hit stream", True, "server"),
]


def case_body(request: dict[str, Any], stream: bool, unique: str, name: str, i: int) -> bytes:
    """The captured request; with `unique`, its last text block says which server (and request)."""
    if not unique:
        return compact({**request, "stream": stream})
    tag = f" [{name}]" if unique == "server" else f" [{name} {stream} {i}]"
    last = request["messages"][-1]
    content = [*last["content"][:-1], {**last["content"][-1]}]
    content[-1]["text"] += tag
    messages = [*request["messages"][:-1], {**last, "content": content}]
    return compact({**request, "messages": messages, "stream": stream})


def run(args: argparse.Namespace) -> dict[str, Any]:
    request = load_request()
    headers = client_headers(API_KEY)
    rows: list[dict[str, Any]] = []
    pairs: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="llm-bench-limits-") as tmp:
        workdir = Path(tmp)
        base = servers.export_proxy_app(args.baseline, workdir / "baseline")
        double = servers.start_double(workdir, REPLY)
        redis = None
        cache: dict[str, str] = {}
        if args.cache:
            redis = RedisTLSServer(make_certs(workdir / "tls"), workdir / "redis")
            redis.start()
            cache = {"redis_url": redis.url, "redis_ca_file": str(redis.certs.ca_file)}
        procs = {
            "after": servers.start_proxy(workdir, "proxy_app-after", double.url, API_KEY, **cache),
            "before": servers.start_proxy(
                workdir, "proxy_app-before", double.url, API_KEY, source=base, **cache
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
            for mode, stream, unique in CACHE_CASES if args.cache else PLAIN_CASES:
                samples: dict[str, list[tuple[float, float]]] = {name: [] for name in procs}
                cpu = {name: proc.cpu_seconds() for name, proc in procs.items()}
                for i in range(args.warmup + args.requests):
                    order = ["after", "before"] if i % 2 else ["before", "after"]
                    for name in order:
                        body = case_body(request, stream, unique, name, i)
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
            if redis is not None:
                redis.stop()
    return {"rows": rows, "paired_median_diff_ms": pairs, "trailing_slash_status": slash}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    rows = results["rows"]
    out = [
        f"# Cost of {results['title']}: proxy_app before/after, same run",
        "",
        f"{results['date']} — {m['nproc']} CPU ({m['cpu_model']}), kernel {m['kernel']}; load "
        f"average {' / '.join(f'{x:.2f}' for x in m['load_avg'])} at the start. `before`: "
        f"proxy_app at `{results['baseline']}`; `after`: this tree. {results['requests']} "
        f"requests per case at c=1 after {results['warmup']} warm-up, alternating between the "
        "two servers; the captured Claude Code request (49 KB) against the Ollama API double. "
        f"`POST /v1/messages/` answered {results['trailing_slash_status']}"
        + (" (each runs the code it claims to: 307 before issue 12, 404 after)." if 307 in
           results["trailing_slash_status"].values() else ".")
        + (" Both servers use one TLS-only redis-server (cache on)." if results["cache"] else ""),
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
    parser.add_argument("--name", default="limits", help="results file name, without suffix")
    parser.add_argument("--title", default="issue 12's limits", help="what the change is")
    parser.add_argument("--cache", action="store_true", help="cache miss and hit cases")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine_info(),
        "baseline": args.baseline,
        "title": args.title,
        "cache": args.cache,
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
        for mode in dict.fromkeys(r["mode"] for r in results["rows"])
    }
    text = markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
