"""The autoscaler's own numbers as Prometheus text, and the targets file for the hosts' proxies.

Served on 127.0.0.1:AUTOSCALE_METRICS_PORT/metrics (default 8405) and written next to the state
file (`autoscale.prom`); the alert rules in monitoring/rules.yml read them (spend near budget,
unable to act, a host stuck loading). `targets.json` lists each joined host's proxy_app (its
tunnel's local port) for Prometheus' file_sd (monitoring/prometheus.yml).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fleet.autoscale.policy import Settings
from fleet.autoscale.state import State

PREFIX = "llm_autoscaler"


def _host_states(fleet: dict[str, Any]) -> dict[str, int]:
    counts = dict.fromkeys(("serving", "booting", "draining", "stopped", "outbid"), 0)
    for host in fleet.get("hosts") or []:
        if host["outbid"]:
            counts["outbid"] += 1
        elif host["stopped"]:
            counts["stopped"] += 1
        elif host["draining"]:
            counts["draining"] += 1
        else:
            counts["serving" if host["serving"] else "booting"] += 1
    return counts


def render(state: State, settings: Settings) -> str:
    """Every metric, one `# TYPE` line each."""
    fleet = state.fleet
    gauges: list[tuple[str, str, float]] = [
        ("up", "", 1),
        ("fleet_dollars_per_hour", "", float(fleet.get("dph") or 0)),
        ("spent_today_dollars", "", state.ledger.spent),
        ("budget_dollars_per_hour", "", settings.budget_per_hour),
        ("budget_dollars_per_day", "", settings.budget_per_day),
        ("waiting_requests", "", float(fleet.get("waiting") or 0)),
        ("last_success_timestamp_seconds", "", state.last_ok or 0),
    ]
    gauges += [("hosts", f'{{state="{k}"}}', v) for k, v in _host_states(fleet).items()]
    now = float(fleet.get("at") or 0)
    for host in fleet.get("hosts") or []:
        if not (host["serving"] or host["stopped"] or host["outbid"] or host["draining"]):
            since = state.memory.since.get(int(host["id"]), now)
            gauges.append(("host_booting_seconds", f'{{host="{host["name"]}"}}', now - since))
    counters = [
        ("gateway_refused_total", float(fleet.get("refused") or 0)),
        ("actions_failed_total", state.counters.get("failed", 0)),
        ("budget_refusals_total", state.counters.get("refused_budget", 0)),
        ("rented_total", state.counters.get("rented", 0)),
    ]
    lines: list[str] = []
    for name in dict.fromkeys(n for n, _, _ in gauges):
        lines.append(f"# TYPE {PREFIX}_{name} gauge")
        lines += [f"{PREFIX}_{n}{labels} {v:g}" for n, labels, v in gauges if n == name]
    for name, value in counters:
        lines += [f"# TYPE {PREFIX}_{name} counter", f"{PREFIX}_{name} {value:g}"]
    return "\n".join(lines) + "\n"


def write(directory: Path, text: str, ports: dict[str, int]) -> None:
    """`autoscale.prom` and `targets.json` (file_sd) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "autoscale.prom").write_text(text)
    targets = [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"host": name}}
        for name, port in sorted(ports.items())
    ]
    (directory / "targets.json").write_text(json.dumps(targets, indent=1))


class MetricsServer:
    """GET /metrics answers the latest text (`update` replaces it)."""

    def __init__(self, port: int) -> None:
        self.text = f"{PREFIX}_up 1\n"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = owner.text.encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def update(self, text: str) -> None:
        self.text = text

    def __enter__(self) -> MetricsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
