"""Charts of a bench run, drawn from its results JSON with matplotlib (Agg, no display needed).

    python -m bench.charts [--results bench/results/latest.json] [--out bench/results]

`make bench` draws them after every run (bench/__main__.py calls :func:`render`); this command
redraws them from a results file alone. One PNG per question:

  latency.png     p50 latency (bar) and p90 (tick) per target, for each mode and concurrency
  throughput.png  requests per second at concurrency 16, proxy_app vs LiteLLM (with the ratio)
  cache_hit.png   p50 latency at concurrency 1: the double (floor), proxy_app, a cache hit
  gateway.png     only when the results have a gateway target: its p50 over proxy_app's
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first)
from matplotlib.figure import Figure  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = (8.0, 4.5)  # inches; at DPI this is 800 x 450 pixels
DPI = 100
CASES = [("non-stream", 1), ("stream", 1), ("non-stream", 16), ("stream", 16)]
COLOURS = {
    "direct": "#9e9e9e",
    "proxy_app": "#1f77b4",
    "proxy_app+hit": "#2ca02c",
    "litellm": "#d62728",
}
# No timestamps or software versions in the files: the same JSON gives the same bytes.
PNG_METADATA: dict[str, Any] = {"Software": None}


def _row(rows: Sequence[dict[str, Any]], target: str, mode: str, c: int) -> dict[str, Any] | None:
    for row in rows:
        if (row["target"], row["mode"], row["concurrency"]) == (target, mode, c):
            return row
    return None


def _p(row: dict[str, Any] | None, stat: str = "p50") -> float:
    value = (row or {}).get("latency_ms", {}).get(stat)
    return float(value) if value is not None else float("nan")


def _targets(results: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    for row in results["rows"]:
        if row["target"] not in seen:
            seen.append(row["target"])
    return seen


def _colour(target: str, index: int) -> str:
    return COLOURS.get(target, f"C{index + 4}")


def _title(ax: Any, text: str, results: dict[str, Any]) -> None:
    machine = results.get("machine", {})
    cpus = machine.get("nproc", "?")
    ax.set_title(f"{text}\n{results.get('date', '')[:10]}, {cpus} CPU, loopback, Ollama double",
                 fontsize=10)  # fmt: skip


def latency(results: dict[str, Any]) -> Figure:
    """Grouped bars: p50 per target for each (mode, concurrency); p90 as a black tick."""
    targets = _targets(results)
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    width = 0.8 / max(len(targets), 1)
    for i, target in enumerate(targets):
        xs = [n + (i - (len(targets) - 1) / 2) * width for n in range(len(CASES))]
        rows = [_row(results["rows"], target, mode, c) for mode, c in CASES]
        ax.bar(xs, [_p(r) for r in rows], width, label=target, color=_colour(target, i))
        ax.scatter(xs, [_p(r, "p90") for r in rows], marker="_", s=120, color="black",
                   zorder=3, label="p90" if i == 0 else None)  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylabel("latency, ms (log scale)")
    ax.set_xticks(range(len(CASES)), [f"{mode}\nc={c}" for mode, c in CASES])
    ax.legend(fontsize=8, ncols=min(len(targets) + 1, 5))
    _title(ax, "Latency per request: p50 (bars) and p90", results)
    fig.tight_layout()
    return fig


def throughput(results: dict[str, Any]) -> Figure:
    """Bars: requests per second at c=16, per target, for each mode; ×LiteLLM written on top."""
    targets = _targets(results)
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    modes = ["non-stream", "stream"]
    width = 0.8 / max(len(targets), 1)
    for i, target in enumerate(targets):
        xs = [n + (i - (len(targets) - 1) / 2) * width for n in range(len(modes))]
        rows = [_row(results["rows"], target, mode, 16) for mode in modes]
        rps = [float((r or {}).get("rps", float("nan"))) for r in rows]
        ax.bar(xs, rps, width, label=target, color=_colour(target, i))
        for x, value, mode in zip(xs, rps, modes, strict=True):
            litellm = _row(results["rows"], "litellm", mode, 16)
            if litellm and target != "litellm" and value == value:
                ax.annotate(f"{value / litellm['rps']:.1f}×", (x, value), ha="center",
                            va="bottom", fontsize=8)  # fmt: skip
    ax.set_ylabel("requests per second")
    ax.set_xticks(range(len(modes)), [f"{mode}, c=16" for mode in modes])
    ax.legend(fontsize=8)
    _title(ax, "Throughput at concurrency 16 (× = times LiteLLM's)", results)
    fig.tight_layout()
    return fig


def cache_hit(results: dict[str, Any]) -> Figure:
    """Bars at c=1: the double alone, proxy_app uncached, proxy_app answering from Redis."""
    targets = [t for t in ("direct", "proxy_app", "proxy_app+hit") if t in _targets(results)]
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    modes = ["non-stream", "stream"]
    width = 0.8 / max(len(targets), 1)
    for i, target in enumerate(targets):
        xs = [n + (i - (len(targets) - 1) / 2) * width for n in range(len(modes))]
        values = [_p(_row(results["rows"], target, mode, 1)) for mode in modes]
        ax.bar(xs, values, width, label=target, color=_colour(target, i))
        for x, value in zip(xs, values, strict=True):
            ax.annotate(f"{value:.1f}", (x, value), ha="center", va="bottom", fontsize=8)
    ax.axhline(3.0, color="black", linestyle="--", linewidth=1, label="target for a hit: 3 ms")
    ax.set_ylabel("p50 latency, ms")
    ax.set_xticks(range(len(modes)), [f"{mode}, c=1" for mode in modes])
    ax.legend(fontsize=8)
    _title(ax, "Response cache: a hit against the uncached path and the floor", results)
    fig.tight_layout()
    return fig


def gateway(results: dict[str, Any]) -> Figure | None:
    """Bars: p50 added by each gateway target over proxy_app alone; None without gateway rows."""
    gateways = [t for t in _targets(results) if "gateway" in t]
    if not gateways:
        return None
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    width = 0.8 / len(gateways)
    for i, target in enumerate(gateways):
        xs = [n + (i - (len(gateways) - 1) / 2) * width for n in range(len(CASES))]
        added = [
            _p(_row(results["rows"], target, mode, c))
            - _p(_row(results["rows"], "proxy_app", mode, c))
            for mode, c in CASES
        ]
        ax.bar(xs, added, width, label=target, color=_colour(target, i))
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("p50 added over proxy_app, ms")
    ax.set_xticks(range(len(CASES)), [f"{mode}\nc={c}" for mode, c in CASES])
    ax.legend(fontsize=8)
    _title(ax, "Gateway overhead", results)
    fig.tight_layout()
    return fig


CHARTS = {"latency": latency, "throughput": throughput, "cache_hit": cache_hit, "gateway": gateway}


def render(results: dict[str, Any], out: Path) -> list[Path]:
    """Write every chart the results can draw into ``out``; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in CHARTS.items():
        fig = draw(results)
        path = out / f"{name}.png"
        if fig is None:
            path.unlink(missing_ok=True)  # no stale chart from an earlier run
            continue
        fig.savefig(path, dpi=DPI, metadata=PNG_METADATA)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.charts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    for path in render(results, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
