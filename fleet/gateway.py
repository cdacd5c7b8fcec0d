"""One local endpoint for a whole fleet: an SSH tunnel per host, HAProxy in front of them.

    python -m fleet.gateway [run] [--inventory inventories/local.py] [--port 8001]
                                  [--stats-port 8404]          # make gateway
    python -m fleet.gateway status [--stats-port 8404]         # make gateway-status

`run` stays in the foreground until Ctrl-C (or SIGTERM): it opens one supervised
``ssh -N -L <free port>:127.0.0.1:<proxy_port>`` per inventory host (fleet/supervisor.py
re-opens a tunnel that drops), renders HAProxy's config for those tunnels (fleet/haproxy.py),
runs HAProxy on 127.0.0.1:PORT, and prints Claude Code's environment and
``Gateway ready on http://127.0.0.1:PORT``. `status` prints one line per host from HAProxy's
stats. GATEWAY_PORT and GATEWAY_STATS_PORT change the default ports. Exit status 2 with one
sentence when the inventory, the key or a port is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fleet.claude_code import claude_env, env_lines, proxy_key_file
from fleet.errors import TunnelError
from fleet.haproxy import (
    Backend,
    GatewayConfig,
    GatewayError,
    HAProxy,
    host_status,
    read_stats,
    status_lines,
    write_config,
)
from fleet.hostdata import load_inventory
from fleet.ssh_tunnel import free_port_near, ssh_command, wait_for_port
from fleet.supervisor import Supervisor

DEFAULT_PORT = 8001
DEFAULT_STATS_PORT = 8404
# Keep-alive period of the gateway's tunnels: a silent host is dropped and re-dialled in ~15 s.
TUNNEL_ALIVE_INTERVAL = 5
READY_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tunnel_commands(
    hosts: Sequence[Mapping[str, Any]], ports: Mapping[str, int]
) -> dict[str, list[str]]:
    """The ssh command for each host's tunnel to its local port, never prompting."""
    commands = {}
    for entry in hosts:
        name = str(entry["name"])
        argv = ssh_command(name, entry["data"], ports[name], TUNNEL_ALIVE_INTERVAL)
        # Options go before the destination (the last word); a prompt would hang the gateway.
        commands[name] = argv[:-1] + ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"] + argv[-1:]
    return commands


def _check_port(port: int, flag: str) -> None:
    """Raise a sentence naming a free port when something listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        # As HAProxy binds: a port left in TIME_WAIT by the previous gateway is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            return
        except OSError:
            pass
    raise TunnelError(
        f"Local port {port} is already in use; pick a free one, e.g. {flag} {free_port_near(port)}."
    )


@contextlib.contextmanager
def _after_tunnels_open(ports: Mapping[str, int], timeout: float = 15) -> Iterator[None]:
    """Wait (up to ``timeout``) for the tunnels' local ends, so no first check fails for nothing."""
    deadline = time.monotonic() + timeout
    for port in ports.values():
        # a host down or slow is HAProxy's checks to report, not this wait's
        with contextlib.suppress(TunnelError):
            wait_for_port(port, timeout=max(0.1, deadline - time.monotonic()))
    yield


def wait_until_up(cfg: GatewayConfig, timeout: float = READY_TIMEOUT) -> list[dict[str, Any]]:
    """Wait until every host passed its health check (or ``timeout``); return their status."""
    deadline = time.monotonic() + timeout
    while True:
        hosts = host_status(read_stats(cfg.stats_port))
        if all(h.get("state") == "UP" for h in hosts) or time.monotonic() > deadline:
            return hosts
        time.sleep(0.2)


def run(args: argparse.Namespace) -> int:
    try:
        _check_port(args.port, "--port")
        _check_port(args.stats_port, "--stats-port")
        hosts = load_inventory(args.inventory)
        key = proxy_key_file()  # printed as "$(cat FILE)", never the key itself
    except TunnelError as exc:
        print(exc, file=sys.stderr)
        return 2
    ports = {str(h["name"]): _free_port() for h in hosts}
    cfg = GatewayConfig(
        hosts=[Backend(name, port) for name, port in ports.items()],
        port=args.port,
        stats_port=args.stats_port,
    )
    # `kill <pid>` stops the gateway like Ctrl-C does, through the `finally` blocks below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with tempfile.TemporaryDirectory(prefix="llm-gateway-") as workdir:
        try:
            config = write_config(cfg, Path(workdir))
        except GatewayError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(
            f"Opening {len(ports)} tunnel(s): "
            + ", ".join(f"{name} on 127.0.0.1:{port}" for name, port in ports.items())
            + f" (ssh's messages: {workdir}/<host>.log)",
            file=sys.stderr,
            flush=True,
        )
        tunnels = Supervisor(tunnel_commands(hosts, ports), output_dir=Path(workdir))
        try:
            with tunnels, _after_tunnels_open(ports), HAProxy(config, cfg) as haproxy:
                for line in status_lines(wait_until_up(cfg)):
                    print(line, file=sys.stderr)
                env = claude_env(hosts[0]["data"], cfg.port, key)
                print("# In the shell that runs `claude`:")
                print("\n".join(env_lines(env)))
                print(f"Gateway ready on http://127.0.0.1:{cfg.port}", flush=True)
                assert haproxy.proc is not None
                code = haproxy.proc.wait()
                print(f"haproxy exited with status {code}.", file=sys.stderr)
                return 1
        except KeyboardInterrupt:  # Ctrl-C, at any point: the `with` closed everything
            return 0
        except GatewayError as exc:  # haproxy did not start
            print(exc, file=sys.stderr)
            return 1


def status(args: argparse.Namespace) -> int:
    try:
        rows = read_stats(args.stats_port)
    except GatewayError:
        print(
            f"No gateway answers on 127.0.0.1:{args.stats_port}; start it with `make gateway`.",
            file=sys.stderr,
        )
        return 2
    print("\n".join(status_lines(host_status(rows))))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleet.gateway",
        description="One local endpoint for the fleet: SSH tunnels + HAProxy (docs/gateway.md).",
    )
    port = int(os.environ.get("GATEWAY_PORT") or DEFAULT_PORT)
    stats_port = int(os.environ.get("GATEWAY_STATS_PORT") or DEFAULT_STATS_PORT)
    commands = parser.add_subparsers(dest="command")
    run_parser = commands.add_parser("run", help="run the gateway in the foreground (default)")
    status_parser = commands.add_parser("status", help="one line per host")
    for sub in (parser, run_parser):
        sub.add_argument("--inventory", default="inventories/local.py", help="pyinfra inventory")
        sub.add_argument("--port", type=int, default=port, help="gateway port (GATEWAY_PORT)")
    for sub in (parser, run_parser, status_parser):
        sub.add_argument(
            "--stats-port",
            type=int,
            default=stats_port,
            help="stats and Prometheus port (GATEWAY_STATS_PORT)",
        )
    args = parser.parse_args(argv)
    return status(args) if args.command == "status" else run(args)


if __name__ == "__main__":
    sys.exit(main())
