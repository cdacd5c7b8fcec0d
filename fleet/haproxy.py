"""HAProxy for the gateway: the config rendered from a template, checked, run, and its stats read.

    cfg = GatewayConfig(hosts=[Backend("sandbox-1", 40001), Backend("sandbox-2", 40002)])
    path = write_config(cfg, workdir)      # rendered and validated with `haproxy -c -f`
    with HAProxy(path, cfg) as proxy:      # runs `haproxy -db -f path` until the block ends
        rows = read_stats(cfg.stats_port)  # one row per host, from the stats page's CSV

The template is fleet/templates/haproxy.cfg.j2; every tunable is a GatewayConfig field.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"


class GatewayError(Exception):
    """A problem the user fixes; the message is one sentence for the terminal."""


@dataclass(frozen=True)
class Backend:
    """One inventory host as HAProxy sees it: its name and the local end of its tunnel."""

    name: str
    port: int


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the template needs; the defaults are the gateway's documented behaviour."""

    hosts: list[Backend] = field(default_factory=list)
    port: int = 8001
    stats_port: int = 8404
    # Claude Code's bodies measured 3.04 bytes per estimated prompt token (the captured
    # fixtures, 46–134 KB); proxy_app admits at most num_ctx tokens, so a 32k window means
    # bodies up to ~100 KB, and long sessions with bigger windows pass 200 KB. 512 KiB keeps
    # every request of a window up to ~160k tokens retryable.
    bufsize: int = 512 * 1024
    maxconn: int = 256
    server_maxconn: int = 32
    # A session whose host is full (server_maxconn in flight) waits in that host's queue; while
    # this many wait there, its request goes to the least busy host instead and the session
    # moves (0: never moves). 1: a request waits behind at most one other for its host's slots,
    # so a host that joins under load takes sessions from full hosts, not only new ones.
    server_maxqueue: int = 1
    # A session's host is forgotten after this long without a request (its KV cache is long
    # gone by then); its next request goes to the least busy host.
    session_expire: str = "4h"
    max_queue: int = 64
    max_header_bytes: int = 65536
    idle_timeout: str = "10m"
    queue_timeout: str = "30s"
    check_interval: str = "2s"
    check_fastinter: str = "500ms"
    fall: int = 2
    rise: int = 2
    retry_after: int = 5
    # The runtime API's socket (level admin); set, the gateway may start with no host and
    # hosts join and leave while it runs (the autoscaler's gateway).
    admin_socket: str = ""


def render_config(cfg: GatewayConfig) -> str:
    """The haproxy.cfg text for ``cfg`` (fleet/templates/haproxy.cfg.j2)."""
    if not cfg.hosts and not cfg.admin_socket:
        raise GatewayError("The gateway needs at least one host; the inventory lists none.")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.get_template("haproxy.cfg.j2").render(**vars(cfg))


def haproxy_binary() -> str:
    """The haproxy executable (Debian's `haproxy` package, which `make deps` installs)."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if not found:
        raise GatewayError("haproxy is not installed; run `make deps` (it installs Debian's).")
    return found


def check_config(path: Path) -> None:
    """Validate a config with ``haproxy -c``, warnings included; raise GatewayError with why."""
    done = subprocess.run(
        [haproxy_binary(), "-dW", "-c", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr).splitlines()
        lines = [line for line in output if "ALERT" in line or "WARNING" in line]
        first = (lines or output or ["no output"])[0]
        reason = re.sub(r"^\[\w+\]\s+\(\d+\) : (config : )?", "", first)
        raise GatewayError(f"HAProxy rejected the generated config {path}: {reason.strip()}")


def write_config(cfg: GatewayConfig, workdir: Path) -> Path:
    """Render ``cfg`` into ``workdir/haproxy.cfg`` and validate it; return the path."""
    path = workdir / "haproxy.cfg"
    path.write_text(render_config(cfg))
    check_config(path)
    return path


class HAProxy:
    """``haproxy -db -f <config>`` as a child process, ready once the stats page answers."""

    def __init__(self, config: Path, cfg: GatewayConfig) -> None:
        self.config = config
        self.cfg = cfg
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> HAProxy:
        self.proc = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(self.config)], stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GatewayError(f"haproxy exited with status {self.proc.returncode} at start.")
            try:
                read_stats(self.cfg.stats_port)
                return self
            except GatewayError:
                time.sleep(0.05)
        raise GatewayError(f"haproxy did not answer within {timeout:g} seconds.")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> HAProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def read_stats(stats_port: int, timeout: float = 3) -> list[dict[str, str]]:
    """Every row of HAProxy's stats CSV (frontends, backends, servers) as dicts."""
    url = f"http://127.0.0.1:{stats_port}/stats;csv"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            text = resp.read().decode()
    except (OSError, urllib.error.URLError) as exc:
        raise GatewayError(f"The gateway's stats page {url} does not answer ({exc}).") from None
    return list(csv.DictReader(io.StringIO(text.lstrip("# "))))


def host_status(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per host: state, requests (both backends), in flight, last check, from the stats rows."""
    hosts: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["pxname"] not in ("by_session", "least_busy") or row["svname"] in (
            "FRONTEND",
            "BACKEND",
        ):
            continue
        entry = hosts.setdefault(
            row["svname"], {"name": row["svname"], "requests": 0, "in_flight": 0, "queued": 0}
        )
        entry["requests"] += int(row.get("stot") or 0)
        entry["in_flight"] += int(row.get("scur") or 0)
        entry["queued"] += int(row.get("qcur") or 0)
        if row["pxname"] == "by_session":
            entry["state"] = row["status"]
            check = row.get("check_status") or "-"
            code = row.get("check_code") or ""
            duration = row.get("check_duration") or ""
            entry["last_check"] = (
                check + (f" {code}" if code else "") + (f" in {duration} ms" if duration else "")
            )
            entry["last_change_s"] = int(row.get("lastchg") or 0)
    return list(hosts.values())


def status_lines(hosts: list[dict[str, Any]]) -> list[str]:
    """One line per host for `make gateway-status`."""
    width = max((len(h["name"]) for h in hosts), default=4)
    return [
        f"{h['name']:<{width}}  {h.get('state', '?'):<6} requests {h['requests']:<6} "
        f"in flight {h['in_flight']:<3} queued {h['queued']:<3} "
        f"last check {h.get('last_check', '-')} ({h.get('last_change_s', 0)} s in this state)"
        for h in hosts
    ]
