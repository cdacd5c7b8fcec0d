"""`fleet status`: one row per labelled instance, then what the tokens cost here and at Anthropic.

Per instance: id, GPU, state, $/h, uptime, cost so far (fleet/cost.py), proxy_app's health and
counters read over SSH (running instances only). Totals: cost, tokens, $ per million output
tokens, and the same tokens at Anthropic's list prices (`fleet_anthropic_prices` in group data).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleet.autoscale import report as autoscale_report
from fleet.cost import anthropic_cost, per_million, spent
from fleet.errors import FleetError
from fleet.hosts import host_data
from fleet.probe import HostReport
from fleet.provider import Instance, Provider
from fleet.steps import Steps


def _uptime(instance: Instance) -> str:
    if instance.state != "running" or instance.uptime_mins is None:
        return "-"
    minutes = int(instance.uptime_mins)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _read(row: Instance, steps: Steps, env: Mapping[str, str]) -> HostReport:
    """The host's report when it runs; `-` when not, the reason when it cannot be reached."""
    if row.state != "running":
        return HostReport(health="-")
    try:
        return steps.read_host(host_data(row, env))
    except FleetError:
        return HostReport(health="no SSH endpoint")


def collect(
    provider: Provider,
    label: str,
    steps: Steps,
    env: Mapping[str, str],
    prices: Mapping[str, Any],
) -> dict[str, Any]:
    """The status as data (what `--json` prints)."""
    now = steps.now()
    rows: list[dict[str, Any]] = []
    tokens: dict[tuple[str, str], int] = {}
    for row in provider.list_instances(label):
        report = _read(row, steps, env)
        for key, count in report.by_class.items():
            tokens[key] = tokens.get(key, 0) + count
        cost = spent(row, now)
        rows.append(
            {
                "id": row.id,
                "gpu": row.gpu,
                "state": row.state,
                "dph": row.dph,
                "uptime": _uptime(row),
                "storage_dph": row.storage_dph,
                "uptime_mins": row.uptime_mins,
                "cost_compute": round(cost.compute, 6),
                "cost_storage": round(cost.storage, 6),
                "cost": round(cost.total, 6),
                "health": report.health,
                "requests": report.requests,
                "input_tokens": report.input_tokens,
                "output_tokens": report.output_tokens,
                "cache_hits": report.cache_hits,
            }
        )
    total = sum(r["cost"] for r in rows)
    output = sum(r["output_tokens"] for r in rows)
    anthropic = anthropic_cost(tokens, prices)
    return {
        "provider": provider.name,
        "label": label,
        "instances": rows,
        "totals": {
            "cost": round(total, 6),
            # billed now: running instances whole, the others their disks
            "dph": round(
                sum(r["dph"] if r["state"] == "running" else r["storage_dph"] for r in rows), 6
            ),
            "requests": sum(r["requests"] for r in rows),
            "input_tokens": sum(r["input_tokens"] for r in rows),
            "output_tokens": output,
            "cache_hits": sum(r["cache_hits"] for r in rows),
            "per_million_output": per_million(total, output),
            "anthropic_cost": round(anthropic, 6),
            "tokens_by_class": {f"{c}/{d}": n for (c, d), n in sorted(tokens.items())},
        },
        "prices": {"date": prices.get("date"), "source": prices.get("source")},
    }


def render(status: Mapping[str, Any]) -> str:
    """The terminal table."""
    head = (
        "id",
        "GPU",
        "state",
        "$/h",
        "uptime",
        "cost",
        "health",
        "requests",
        "in tok",
        "out tok",
        "cache hits",
    )
    lines = [" | ".join(head)]
    for r in status["instances"]:
        lines.append(
            " | ".join(
                str(v)
                for v in (
                    r["id"],
                    r["gpu"],
                    r["state"],
                    f"{r['dph']:.3f}",
                    r["uptime"],
                    f"{r['cost']:.2f} ({r['cost_compute']:.2f} + {r['cost_storage']:.2f} disk)",
                    r["health"],
                    f"{r['requests']:,}",
                    f"{r['input_tokens']:,}",
                    f"{r['output_tokens']:,}",
                    f"{r['cache_hits']:,}",
                )
            )
        )
    t, p = status["totals"], status["prices"]
    per_m = t["per_million_output"]
    lines += [
        "",
        f"Total: ${t['cost']:.2f} so far (billed now: ${t['dph']:.3f}/h); {t['requests']:,}"
        f" requests, {t['input_tokens']:,} input / {t['output_tokens']:,} output tokens,"
        f" {t['cache_hits']:,} cache hits.",
        f"Per million output tokens: {'-' if per_m is None else f'${per_m:.2f}'}.",
        f"The same tokens on Anthropic's API: ${t['anthropic_cost']:.2f} (list prices of"
        f" {p['date']}, {p['source']}).",
    ]
    if not status["instances"]:
        lines = [f"No {status['provider']} instance is labelled {status['label']}."]
    if status.get("autoscaler"):
        lines += ["", autoscale_report.render(status["autoscaler"])]
    return "\n".join(lines)


def status(
    provider: Provider,
    label: str,
    steps: Steps,
    env: Mapping[str, str],
    prices: Mapping[str, Any],
    *,
    as_json: bool = False,
    autoscale_state: Path | None = None,
) -> dict[str, Any]:
    """Print the status (a table, or JSON) and return it; with the autoscaler's state file,
    its last look, decisions and the alerts firing now (fleet/autoscale/report.py)."""
    data = collect(provider, label, steps, env, prices)
    if autoscale_state is not None:
        data["autoscaler"] = autoscale_report.summary(autoscale_state, steps.now())
    steps.say(json.dumps(data, indent=2) if as_json else render(data))
    return data
