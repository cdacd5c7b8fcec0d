"""SSH tunnel to a deployed host's proxy_app, and the environment Claude Code needs to use it.

    python -m fleet.tunnel --inventory inventories/local.py [--host NAME]
                                 [--local-port 8001] [--open]

Prints the `ssh -N -L …` command and `export` lines for Claude Code. With `--open` it also runs
that ssh in the foreground until ssh exits (Ctrl-C closes the tunnel). When the local port is
taken, printing never fails: a tunnel (or proxy_app) already answering there is reported and its
lines printed; anything else gets the lines for the next free port. Only `--open` with an
explicit `--local-port` that is taken is an error. The host's data comes
from the inventory (`pyinfra <inventory> debug-inventory --json`, so group_data/ applies) on top
of the roles' defaults; the API key is `secrets/proxy_api_key`, as the deploy wrote it.
Exit status 2 with one sentence when the inventory, the host, the key or the local port is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devkit.ports import port_in_use

REPO = Path(__file__).resolve().parents[1]
PYINFRA = Path(sys.executable).with_name("pyinfra")
DEFAULT_LOCAL_PORT = 8001


class TunnelError(Exception):
    """A problem the user fixes; the message is one sentence for the terminal."""


# --------------------------------------------------------------------------- inventory data


def role_defaults() -> dict[str, Any]:
    """Every role's DEFAULTS merged: the values a deploy uses when no data overrides them."""
    from roles.ollama.defaults import DEFAULTS as OLLAMA
    from roles.proxy.defaults import DEFAULTS as PROXY
    from roles.redis.defaults import DEFAULTS as REDIS

    return {**OLLAMA, **REDIS, **PROXY}


def load_inventory(
    inventory: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> list[dict[str, Any]]:
    """Return ``[{"name", "groups", "data"}…]`` for an inventory file, data over role defaults.

    Runs ``pyinfra <inventory> debug-inventory --json`` from the repository root (so
    group_data/ applies exactly as in a deploy). Raises TunnelError with pyinfra's reason.
    """
    path = Path(inventory)
    if not path.is_file():
        raise TunnelError(f"The inventory {inventory} does not exist.")
    argv = [str(PYINFRA), str(path.resolve()), "debug-inventory", "--json"]
    done = subprocess.run(
        argv,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    try:
        hosts = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        hosts = None
    if not isinstance(hosts, list):
        output = f"{done.stdout}\n{done.stderr}".splitlines()
        reasons = [line.strip() for line in output if "error" in line.lower()]
        reason = (reasons or [line.strip() for line in output if line.strip()] or ["no output"])[-1]
        reason = reason.removeprefix("--> ").removeprefix("pyinfra error in ")
        raise TunnelError(f"Could not load the inventory {inventory}: {reason}")
    if not hosts:
        raise TunnelError(f"The inventory {inventory} has no hosts.")
    defaults = role_defaults()
    return [{**h, "data": {**defaults, **h.get("data", {})}} for h in hosts]


def pick_host(hosts: Sequence[Mapping[str, Any]], name: str | None) -> Mapping[str, Any]:
    """The host called ``name``, or the first one when no name is given."""
    if name is None:
        return hosts[0]
    for entry in hosts:
        if entry["name"] == name:
            return entry
    names = ", ".join(str(h["name"]) for h in hosts)
    raise TunnelError(f"No host {name!r} in the inventory; it has: {names}.")


def proxy_key() -> str:
    """The key proxy_app accepts, from the control machine's secrets folder (never generated)."""
    from roles.secrets import secrets_dir

    path = secrets_dir() / "proxy_api_key"
    try:
        key = path.read_text().strip()
    except OSError:
        key = ""
    if not key:
        raise TunnelError(f"{path} is missing; deploy first (the deploy creates the proxy key).")
    return key


# --------------------------------------------------------------------------- rendering


def ssh_command(
    name: str, data: Mapping[str, Any], local_port: int, alive_interval: int = 30
) -> list[str]:
    """``ssh -N -L local:127.0.0.1:<proxy_port> …`` for one inventory host.

    A dead connection is noticed after 3 unanswered keep-alives, ``alive_interval`` s apart.
    """
    remote_port = int(data.get("proxy_port", 8000))
    argv = ["ssh", "-N", "-L", f"{local_port}:127.0.0.1:{remote_port}"]
    argv += ["-p", str(data.get("ssh_port") or 22)]
    if data.get("ssh_key"):
        argv += ["-i", str(data["ssh_key"]), "-o", "IdentitiesOnly=yes"]
    if data.get("ssh_known_hosts_file"):
        argv += ["-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}"]
    checking = data.get("ssh_strict_host_key_checking") or "accept-new"
    argv += ["-o", f"StrictHostKeyChecking={checking}"]
    argv += ["-o", f"ServerAliveInterval={alive_interval}", "-o", "ServerAliveCountMax=3"]
    argv += ["-o", "ExitOnForwardFailure=yes"]
    user = data.get("ssh_user") or "root"
    argv.append(f"{user}@{data.get('ssh_hostname') or name}")
    return argv


def claude_env(data: Mapping[str, Any], local_port: int, token: str) -> dict[str, str]:
    """Claude Code's environment for the tunnel: URL, key, the served model and its window."""
    model = str(data.get("proxy_default_model") or data["ollama_models"][0])
    window = str(data.get("proxy_num_ctx") or data["ollama_context_length"])
    return {
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{local_port}",
        "ANTHROPIC_AUTH_TOKEN": token,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        # The deployed window. CLAUDE_CODE_MAX_CONTEXT_TOKENS is left out on purpose: set to a
        # 32k window, Claude Code 2.1.328 compacts proactively after every tool result (two
        # extra full-prompt generations). Without it, proxy_app's "prompt is too long" 400
        # makes Claude Code compact exactly when the context is full.
        "CLAUDE_CODE_AUTO_COMPACT_WINDOW": window,
        # Claude Code caps a Read at 25k tokens: more than a 32k window leaves after its ~16k
        # of system prompt and tools, and no compaction can save that turn. A quarter fits.
        "CLAUDE_CODE_FILE_READ_MAX_OUTPUT_TOKENS": str(int(window) // 4),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_ATTRIBUTION_HEADER": "false",
    }


def render(command: Sequence[str], env: Mapping[str, str]) -> str:
    """The text printed: the tunnel command, then shell lines setting Claude Code's env."""
    lines = ["# 1. Open the tunnel (keep it running):", shlex.join(command), ""]
    lines.append("# 2. In the shell that runs `claude`:")
    lines += env_lines(env)
    return "\n".join(lines) + "\n"


def env_lines(env: Mapping[str, str]) -> list[str]:
    """Shell lines that give Claude Code ``env`` (and drop a stray ANTHROPIC_API_KEY)."""
    return ["unset ANTHROPIC_API_KEY"] + [
        f"export {key}={shlex.quote(value)}" for key, value in env.items()
    ]


def parse_exports(text: str) -> dict[str, str]:
    """The ``export K=V`` lines of :func:`render`'s text, as a dict."""
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


# --------------------------------------------------------------------------- local port


def free_port_near(port: int) -> int:
    """The first free port above ``port`` (any free port if none in the next 100)."""
    for candidate in range(port + 1, min(port + 101, 65536)):
        if not port_in_use(candidate):
            return candidate
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_local_port(port: int) -> None:
    """Raise TunnelError naming the port and a free alternative when ``port`` is taken."""
    if port_in_use(port):
        alternative = free_port_near(port)
        raise TunnelError(
            f"Local port {port} is already in use; pick a free one, e.g. "
            f"--local-port {alternative}."
        )


def proxy_health(port: int) -> str | None:
    """The ``status`` proxy_app's /health reports on 127.0.0.1:``port``, or None."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/health")
    try:
        with urllib.request.urlopen(request, timeout=3) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as error:  # 503: proxy_app answers, but is unhealthy
        try:
            body = json.loads(error.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return str(status) if status else None


def settle_port(port: int, explicit: bool, opening: bool) -> tuple[int, str]:
    """Return the local port to use and a note for the terminal ("" when ``port`` is free).

    A taken port is an error only when opening on a port the user named; otherwise an answering
    tunnel is reported (and kept) and anything else moves to the next free port.
    """
    if not port_in_use(port):
        return port, ""
    if opening and explicit:
        check_local_port(port)
    health = proxy_health(port)
    if health is not None and not opening:
        return port, f"A tunnel is already open on 127.0.0.1:{port} (proxy_app reports {health})."
    alternative = free_port_near(port)
    return alternative, f"Local port {port} is in use; using {alternative} instead."


def wait_for_port(
    port: int, proc: subprocess.Popen[Any] | None = None, timeout: float = 30
) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise TunnelError(f"ssh exited with status {proc.returncode} before the tunnel opened.")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TunnelError(f"The tunnel did not open 127.0.0.1:{port} within {timeout:g} seconds.")


# --------------------------------------------------------------------------- command line


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
    args = parser.parse_args(argv)
    try:
        port, note = settle_port(
            args.local_port or DEFAULT_LOCAL_PORT, args.local_port is not None, args.open
        )
        entry = pick_host(load_inventory(args.inventory), args.host)
        command = ssh_command(str(entry["name"]), entry["data"], port)
        text = render(command, claude_env(entry["data"], port, proxy_key()))
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
