"""Hosts join and leave a running gateway through HAProxy's runtime API (its admin socket).

A host joins in maintenance, has its health check enabled, and is enabled only once that check
passed (HAProxy would otherwise count it UP before its first check), in both backends:

    admin = Admin(cfg)                     # cfg.admin_socket set: fleet/haproxy.py GatewayConfig
    admin.join("vast-7000001", 40123)      # add server, enable health, wait for L7OK, enable
    admin.drain("vast-7000001")            # no new request; streams in flight go on
    admin.remove("vast-7000001")           # once nothing is in flight: del server

`load(read_stats(port))` is what the autoscaler observes: per host state, in flight and request
totals, the requests waiting in the queues and how long they wait, and the 529s the gateway
answered itself. (HAProxy's own `qtime` is an average over the last 1,024 requests, too slow
to move for this; the policy estimates the wait from the queue and the completions.)
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from fleet.haproxy import GatewayConfig, GatewayError, read_stats

BACKENDS = ("by_session", "least_busy")
REFUSING = ("no_host", "queue_full")


def _server_args(cfg: GatewayConfig, backend: str, port: int) -> str:
    """The `server` line's arguments (runtime servers take nothing from `default-server`)."""
    check = (
        f"check inter {cfg.check_interval} fastinter {cfg.check_fastinter}"
        f" downinter {cfg.check_interval} fall {cfg.fall} rise {cfg.rise}"
        f" maxconn {cfg.server_maxconn}"
    )
    if backend == "by_session":
        # As the template's default-server: a full host's queue is bounded, past it a session
        # moves to the least busy host.
        check = (f"{check} maxqueue {cfg.server_maxqueue}"
                 " observe layer4 error-limit 1 on-error fail-check")
    return f"127.0.0.1:{port} {check}"


class Admin:
    """Commands to the running HAProxy's admin socket."""

    def __init__(self, cfg: GatewayConfig, timeout: float = 5.0) -> None:
        if not cfg.admin_socket:
            raise GatewayError("This gateway has no admin socket (GatewayConfig.admin_socket).")
        self.cfg = cfg
        self.timeout = timeout

    def command(self, line: str) -> str:
        """Send one command; its answer without the trailing blank line."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self.cfg.admin_socket)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode().strip()

    def _must(self, line: str, *accepted: str) -> None:
        answer = self.command(line)
        if answer and not any(word in answer for word in accepted):
            raise GatewayError(f"HAProxy refused `{line}`: {answer}")

    def join(self, name: str, port: int, timeout: float = 30.0) -> float:
        """Add host `name` (its tunnel on 127.0.0.1:`port`) to both backends once its health
        check passes; seconds its check took. Raises GatewayError if it never passes."""
        started = time.monotonic()
        for backend in BACKENDS:
            self._must(
                f"add server {backend}/{name} {_server_args(self.cfg, backend, port)}",
                "New server registered",
            )
            self._must(f"enable health {backend}/{name}")
        while not self._checked(name):
            if time.monotonic() - started > timeout:
                self.remove(name)
                raise GatewayError(
                    f"{name} did not pass its health check (GET /health through its tunnel on"
                    f" port {port}) within {timeout:g} s; it was not added to the gateway."
                )
            time.sleep(0.1)
        for backend in BACKENDS:
            self._must(f"enable server {backend}/{name}")
        return time.monotonic() - started

    def _checked(self, name: str) -> bool:
        rows = read_stats(self.cfg.stats_port)
        found = [r for r in rows if r["svname"] == name and r["pxname"] in BACKENDS]
        return len(found) == len(BACKENDS) and all(r["check_status"] == "L7OK" for r in found)

    def drain(self, name: str) -> None:
        """No new request goes to `name`; requests in flight (streams) go on."""
        for backend in BACKENDS:
            self._must(f"set server {backend}/{name} state maint")

    def remove(self, name: str, timeout: float = 10.0) -> None:
        """Delete `name` from both backends (maintenance first; HAProxy refuses while a
        connection to it is open, so retry until `timeout`)."""
        deadline = time.monotonic() + timeout
        for backend in BACKENDS:
            self.command(f"set server {backend}/{name} state maint")
            while True:
                answer = self.command(f"del server {backend}/{name}")
                if "deleted" in answer or "No such server" in answer or "Unknown" in answer:
                    break
                if time.monotonic() > deadline:
                    raise GatewayError(f"HAProxy would not delete {backend}/{name}: {answer}")
                time.sleep(0.2)


@dataclass(frozen=True)
class HostLoad:
    state: str  # UP, DOWN, MAINT, "UP 1/2", …
    in_flight: int
    queued: int
    requests: int


@dataclass(frozen=True)
class Load:
    """The gateway's numbers at one look."""

    hosts: dict[str, HostLoad] = field(default_factory=dict)
    waiting: int = 0  # requests in the queues now
    refused: int = 0  # 529s the gateway answered itself since it started


def load(rows: list[dict[str, str]]) -> Load:
    """The autoscaler's view of HAProxy's stats rows."""
    hosts: dict[str, HostLoad] = {}
    waiting, refused = 0, 0
    for row in rows:
        proxy, server = row["pxname"], row["svname"]
        if proxy in REFUSING and server == "BACKEND":
            refused += int(row.get("stot") or 0)
        if proxy not in BACKENDS:
            continue
        if server == "BACKEND":
            waiting += int(row.get("qcur") or 0)
            continue
        before = hosts.get(server, HostLoad(row["status"], 0, 0, 0))
        hosts[server] = HostLoad(
            state=row["status"] if proxy == "by_session" else before.state,
            in_flight=before.in_flight + int(row.get("scur") or 0),
            queued=before.queued + int(row.get("qcur") or 0),
            requests=before.requests + int(row.get("stot") or 0),
        )
    waiting += sum(h.queued for h in hosts.values())
    return Load(hosts, waiting, refused)


def read_load(cfg: GatewayConfig) -> Load:
    return load(read_stats(cfg.stats_port))
