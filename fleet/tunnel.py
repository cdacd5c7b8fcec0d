"""SSH tunnel to a deployed host's proxy_app, and the environment Claude Code needs to use it.

    python -m fleet.tunnel --inventory inventories/local.py [--host NAME]
                                 [--local-port 8001] [--open] [--show-secrets]

Prints the `ssh -N -L …` command and `export` lines for Claude Code; the proxy key is referenced
as `"$(cat …/proxy_api_key)"`, never printed unless `--show-secrets` asks for it. With `--open`
it also runs that ssh in the foreground until ssh exits (Ctrl-C closes the tunnel). When the
local port is taken, printing never fails: a tunnel to this deployment (its proxy_app accepts the
key) already open there or on a later port is reported and its lines printed; else the lines
are for the next free port. Only `--open` with an explicit `--local-port` that is taken is an
error. The host's data comes from the inventory as the deploy sees it (fleet/hostdata.py); the
environment from fleet/claude_code.py, the ssh command and the local port from
fleet/ssh_tunnel.py.
Exit status 2 with one sentence when the inventory, the host, the key or the local port is wrong.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from fleet.claude_code import claude_env, key_if_deployed, proxy_key_file, render
from fleet.errors import TunnelError
from fleet.hostdata import load_inventory, pick_host
from fleet.ssh_tunnel import DEFAULT_LOCAL_PORT, settle_port, ssh_command, wait_for_port


def _tunnel_and_text(
    entry: Mapping[str, Any], port: int, show_secrets: bool
) -> tuple[list[str], str]:
    """The ssh command and the text to print for one inventory host (whatever its engine:
    proxy_app fronts Ollama and llama-server alike)."""
    name, data = str(entry["name"]), entry["data"]
    command = ssh_command(name, data, port)
    env = claude_env(data, port, proxy_key_file())
    return command, render(command, env, show_secrets=show_secrets)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleet.tunnel",
        description="Print (or open) the SSH tunnel to a host's proxy_app and Claude Code's env.",
    )
    parser.add_argument("--inventory", default="inventories/local.py", help="pyinfra inventory")
    parser.add_argument("--host", default=None, help="inventory host name (default: the first)")
    parser.add_argument(
        "--local-port", type=int, default=None, help=f"default {DEFAULT_LOCAL_PORT}"
    )
    parser.add_argument("--open", action="store_true", help="run the tunnel in the foreground")
    parser.add_argument(
        "--show-secrets", action="store_true", help="print the proxy key itself, not $(cat FILE)"
    )
    args = parser.parse_args(argv)
    try:
        port, note = settle_port(
            args.local_port or DEFAULT_LOCAL_PORT,
            args.local_port is not None,
            args.open,
            key_if_deployed(),
        )
        entry = pick_host(load_inventory(args.inventory), args.host)
        command, text = _tunnel_and_text(entry, port, args.show_secrets)
    except TunnelError as exc:
        print(exc, file=sys.stderr)
        return 2
    if note:
        print(note, file=sys.stderr)
    print(text, end="", flush=True)
    if not args.open:
        return 0
    # `kill <pid>` (as tests do) closes the tunnel too, through the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        print(f"Tunnel open on 127.0.0.1:{port}; Ctrl-C closes it.", file=sys.stderr)
        return proc.wait()
    except TunnelError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
