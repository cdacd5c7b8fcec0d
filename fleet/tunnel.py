"""SSH tunnel to a deployed host's proxy_app, and the environment Claude Code needs to use it.

    python -m fleet.tunnel --inventory inventories/local.py [--host NAME]
                                 [--local-port 8001] [--open] [--show-secrets]

Prints the `ssh -N -L …` command and `export` lines for Claude Code; the proxy key is referenced
as `"$(cat …/proxy_api_key)"`, never printed unless `--show-secrets` asks for it. With `--open`
it also runs that ssh in the foreground until ssh exits (Ctrl-C closes the tunnel). When the
local port is taken, printing never fails: a tunnel to this deployment (its proxy_app accepts the
key) already open there or on a later port is reported and its lines printed; else the lines
are for the next free port. Only `--open` with an explicit `--local-port` that is taken is an
error. The host's data comes from the inventory (`pyinfra <inventory> debug-inventory --json`,
so group_data/ applies) on top of the roles' defaults; the API key is `secrets/proxy_api_key`,
as the deploy wrote it.
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
    from roles.llamacpp.defaults import DEFAULTS as LLAMACPP
    from roles.ollama.defaults import DEFAULTS as OLLAMA
    from roles.proxy.defaults import DEFAULTS as PROXY
    from roles.redis.defaults import DEFAULTS as REDIS

    return {**OLLAMA, **LLAMACPP, **REDIS, **PROXY}


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


def proxy_key_file() -> Path:
    """The absolute path of the key proxy_app accepts (the deploy creates it, never this)."""
    from roles.secrets import secrets_dir

    path = (secrets_dir() / "proxy_api_key").absolute()
    try:
        present = bool(path.read_text().strip())
    except OSError:
        present = False
    if not present:
        raise TunnelError(f"{path} is missing; deploy first (the deploy creates the proxy key).")
    return path


def _key_if_deployed() -> str | None:
    try:
        return proxy_key()
    except TunnelError:
        return None


def proxy_key() -> str:
    """The key proxy_app accepts, from the control machine's secrets folder."""
    return proxy_key_file().read_text().strip()


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


# Unset, so the printed environment is exactly what `claude` runs with: an API key (Claude Code
# would send it instead of the token), and what earlier printouts (and the README before
# 2026-11-30) set. Those model variables made Claude Code log
# `[claude-code:unrecognized_model]` on every run, and CLAUDE_CODE_AUTO_COMPACT_WINDOW below
# 100k only produced a warning (Claude Code reads it as its 100k minimum).
STALE = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "CLAUDE_CODE_AUTO_COMPACT_WINDOW",
)


def claude_env(
    data: Mapping[str, Any], local_port: int, token: str | Path
) -> dict[str, str | Path]:
    """Claude Code's environment for the tunnel: only what changes its behaviour.

    ``token`` is the key itself, or (as ``python -m fleet.tunnel`` passes it) the file holding
    it, which :func:`render` prints as ``"$(cat FILE)"`` so the key never reaches the screen.
    No model variables: Claude Code's own ids (claude-opus-5-5, claude-haiku-5-5 for background
    work) are recognised, assume the same 1M window as an unknown id and make the same requests;
    proxy_app serves every ``claude-*`` id with ``proxy_default_model`` (README, "Which model ids").
    """
    window = int(data.get("proxy_num_ctx") or data["ollama_context_length"])
    return {
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{local_port}",
        "ANTHROPIC_AUTH_TOKEN": token,
        # Claude Code caps a Read at 25k tokens: more than a 32k window leaves after its ~11k
        # of system prompt and tools, and no compaction can save that turn. A quarter fits.
        "CLAUDE_CODE_FILE_READ_MAX_OUTPUT_TOKENS": str(window // 4),
        # No telemetry, error reports or update checks to Anthropic from a self-hosted setup.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def render(
    command: Sequence[str], env: Mapping[str, str | Path], show_secrets: bool = False
) -> str:
    """The text printed: the tunnel command, then shell lines setting Claude Code's env.

    A value that is a Path is a secret file: printed as ``"$(cat FILE)"``, or its content with
    ``show_secrets``.
    """
    lines = ["# 1. Open the tunnel (keep it running):", shlex.join(command), ""]
    lines.append("# 2. In the shell that runs `claude`:")
    lines += env_lines(env, show_secrets)
    return "\n".join(lines) + "\n"


def env_lines(env: Mapping[str, str | Path], show_secrets: bool = False) -> list[str]:
    """Shell lines that give Claude Code ``env`` and drop what older printouts set.

    A value that is a Path is a secret file: ``"$(cat FILE)"``, or its content with
    ``show_secrets``.
    """
    lines = [f"unset {' '.join(STALE)}"]
    for key, value in env.items():
        if isinstance(value, Path) and not show_secrets:
            lines.append(f'export {key}="$(cat {shlex.quote(str(value))})"')
        else:
            text = value.read_text().strip() if isinstance(value, Path) else value
            lines.append(f"export {key}={shlex.quote(text)}")
    return lines


def parse_exports(text: str) -> dict[str, str]:
    """The values :func:`render`'s ``export`` lines give, as ``sh`` evaluates them (secret files
    read), in a minimal environment."""
    lines = [line for line in text.splitlines() if line.startswith(("export ", "unset "))]
    keys = [line[len("export ") :].partition("=")[0] for line in lines if line[0] == "e"]
    script = "\n".join([*lines, *(f'printf "%s\\0" "${key}"' for key in keys)])
    done = subprocess.run(
        ["sh", "-c", script],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(zip(keys, done.stdout.split("\0")[: len(keys)], strict=True))


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


def key_refused(port: int, key: str) -> bool:
    """Whether the proxy_app on 127.0.0.1:``port`` answers 401 to ``key`` (another deployment)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models", headers={"x-api-key": key}
    )
    try:
        with urllib.request.urlopen(request, timeout=3):
            return False
    except urllib.error.HTTPError as error:
        return error.code == 401
    except OSError:
        return False


def settle_port(
    port: int, explicit: bool, opening: bool, key: str | None = None
) -> tuple[int, str]:
    """Return the local port to use and a note for the terminal ("" when ``port`` is free).

    A taken port is an error only when opening on a port the user named; opening otherwise moves
    to the next free port. Printing keeps the first port from ``port`` on where a tunnel to this
    deployment answers (proxy_app's /health, and it accepts ``key``), passing over tunnels to
    other deployments and anything else, up to the first free port.
    """
    if not port_in_use(port):
        return port, ""
    if opening and explicit:
        check_local_port(port)
    why = "is in use"
    if not opening:
        for candidate in range(port, min(port + 101, 65536)):
            if not port_in_use(candidate):
                return candidate, f"Local port {port} {why}; using {candidate} instead."
            health = proxy_health(candidate)
            if health is None:
                continue
            if key is not None and key_refused(candidate, key):
                if candidate == port:
                    why = "has a tunnel to another deployment's proxy_app (it refuses this key)"
                continue
            note = (
                f"A tunnel is already open on 127.0.0.1:{candidate} (proxy_app reports {health})."
            )
            return candidate, note
    alternative = free_port_near(port)
    return alternative, f"Local port {port} {why}; using {alternative} instead."


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


def render_llamacpp(name: str, data: Mapping[str, Any], command: Sequence[str]) -> str:
    """The text printed for a host whose engine is llamacpp: no proxy_app there yet."""
    local = command[command.index("-L") + 1].split(":", 1)[0]
    return "\n".join([
        f"# {name} runs llama.cpp's llama-server (engine = llamacpp); proxy_app is not deployed",
        "# there yet, so Claude Code has nothing to talk to. llama-server's own API (OpenAI's",
        "# /v1/chat/completions, /v1/models, /tokenize) through the tunnel (keep it running):",
        shlex.join(command),
        f"# then: curl http://127.0.0.1:{local}/v1/models   (model {data['llamacpp_model_name']})",
    ]) + "\n"  # fmt: skip


def _tunnel_and_text(
    entry: Mapping[str, Any], port: int, show_secrets: bool
) -> tuple[list[str], str]:
    """The ssh command and the text to print for one inventory host."""
    name, data = str(entry["name"]), entry["data"]
    if data.get("engine") == "llamacpp":
        command = ssh_command(name, {**data, "proxy_port": data["llamacpp_port"]}, port)
        return command, render_llamacpp(name, data, command)
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
            _key_if_deployed(),
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
