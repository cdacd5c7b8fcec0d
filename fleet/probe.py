"""Looking at a rented host: does SSH answer, and what do proxy_app's /health and /metrics say.

/health and /metrics listen on the host's loopback only, so they are read over SSH (python3 on
the host fetches both). `parse_metrics` reads the counters `make status` reports from
proxy_app's Prometheus text.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class HostReport:
    """What one host said; `health` is proxy_app's status or why it could not be read."""

    health: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_hits: int = 0
    by_class: dict[tuple[str, str], int] = field(default_factory=dict)


def parse_metrics(text: str) -> HostReport:
    """Requests to /v1/messages, tokens in/out (and by requested class), cache hits."""
    report = HostReport(health="unknown")
    for line in text.splitlines():
        sample = _SAMPLE.match(line.strip())
        if sample is None:
            continue
        name, value = sample["name"], int(float(sample["value"]))
        labels = dict(_LABEL.findall(sample["labels"] or ""))
        if name == "proxy_requests_total" and labels.get("path") == "/v1/messages":
            report.requests += value
        elif name == "proxy_tokens_total":
            if labels.get("direction") == "input":
                report.input_tokens += value
            elif labels.get("direction") == "output":
                report.output_tokens += value
        elif name == "proxy_requested_tokens_total":
            key = (labels.get("class", "other"), labels.get("direction", ""))
            report.by_class[key] = report.by_class.get(key, 0) + value
        elif name == "proxy_cache_hits_total":
            report.cache_hits += value
    if not report.by_class and (report.input_tokens or report.output_tokens):
        # a proxy_app without per-class counters: its tokens are of no known class
        report.by_class = {
            ("other", "input"): report.input_tokens,
            ("other", "output"): report.output_tokens,
        }
    return report


def ssh_answers(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether an SSH server greets on host:port (its `SSH-` banner)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def ssh_argv(data: Mapping[str, Any]) -> list[str]:
    """`ssh … root@host` for one host's inventory data (endpoint, key, known_hosts)."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    argv += ["-o", "StrictHostKeyChecking=accept-new", "-p", str(data["ssh_port"])]
    if data.get("ssh_key"):
        argv += ["-i", str(data["ssh_key"]), "-o", "IdentitiesOnly=yes"]
    if data.get("ssh_known_hosts_file"):
        argv += ["-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}"]
    return [*argv, f"{data.get('ssh_user') or 'root'}@{data['ssh_hostname']}"]


_REMOTE = """
import json, urllib.request
def get(path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:{port}" + path, timeout=10) as r:
            return r.read().decode()
    except Exception as exc:
        return getattr(exc, "read", lambda: str(exc).encode())().decode()
print(json.dumps({{"health": get("/health"), "metrics": get("/metrics")}}))
"""


def read_host(data: Mapping[str, Any]) -> HostReport:
    """proxy_app's health and counters on one host (`proxy_port`, default 8000), over SSH."""
    script = _REMOTE.format(port=int(data.get("proxy_port") or 8000))
    try:
        done = subprocess.run(
            [*ssh_argv(data), "python3", "-c", shlex.quote(script)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return HostReport(health="ssh timed out")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return HostReport(health=f"ssh failed: {reason}")
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        report = parse_metrics(answer["metrics"])
        report.health = str(json.loads(answer["health"]).get("status", "unknown"))
    except (ValueError, KeyError, IndexError, AttributeError):
        return HostReport(health="proxy_app not answering")
    return report
