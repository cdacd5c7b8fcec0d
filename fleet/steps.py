"""The side effects of the fleet commands, in one replaceable object.

`Steps` carries the terminal (output, the yes/no question), the clocks, and the steps that need
real hosts: the SSH probe, the pyinfra deploy, the testinfra host checks, the tunnel lines and the
read of a host's /health and /metrics. The commands take a `Steps`; tests pass one whose host
steps record their arguments, so the vast.ai side runs for real (through the SDK against the
double) without a host.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.claude_code import claude_env, proxy_key_file, render
from fleet.errors import FleetError, TunnelError
from fleet.hostdata import load_inventory, pick_host
from fleet.probe import HostReport, read_host, ssh_answers
from fleet.ssh_tunnel import DEFAULT_LOCAL_PORT, ssh_command

REPO = Path(__file__).resolve().parents[1]
INVENTORY = "inventories/vast.py"
BIN = Path(sys.executable).parent


def _say(text: str) -> None:
    print(text, flush=True)


def ask(question: str) -> bool:
    """Ask on the terminal; anything but y/yes is no, and so is a closed stdin."""
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _run(argv: Sequence[str], env: Mapping[str, str], what: str) -> None:
    done = subprocess.run(argv, cwd=REPO, env={**os.environ, **env}, check=False)
    if done.returncode != 0:
        raise FleetError(
            f"{what} failed (exit {done.returncode}); its output is above. Fix the cause and run"
            " the command again: it rents nothing more."
        )


def deploy(hosts: Sequence[str], env: Mapping[str, str]) -> None:
    """`pyinfra -y inventories/vast.py deploy.py --limit <host>…`."""
    limits = [arg for host in hosts for arg in ("--limit", host)]
    argv = [str(BIN / "pyinfra"), "-y", INVENTORY, "deploy.py", *limits]
    _run(argv, env, f"The deploy to {', '.join(hosts)}")


def check(hosts: Sequence[str], env: Mapping[str, str]) -> None:
    """The testinfra host checks (`tests/infra`) on exactly `hosts`."""
    argv = [str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/infra"]
    argv += ["--inventory", INVENTORY, "-m", "not claude_code"]
    argv += [arg for host in hosts for arg in ("--limit", host)]
    _run(argv, env, f"The host checks on {', '.join(hosts)}")


def tunnel(hosts: Sequence[str], env: Mapping[str, str]) -> str:
    """fleet.tunnel's lines for each host, on local ports 8001, 8002, …"""
    try:
        loaded = {h["name"]: h for h in load_inventory(INVENTORY, env)}
        token = proxy_key_file()
        text = []
        for offset, name in enumerate(hosts):
            entry = pick_host(list(loaded.values()), name)
            port = DEFAULT_LOCAL_PORT + offset
            command = ssh_command(name, entry["data"], port)
            text.append(f"## {name}\n" + render(command, claude_env(entry["data"], port, token)))
    except TunnelError as exc:
        raise FleetError(str(exc)) from exc
    return "\n".join(text)


@dataclass
class Steps:
    """Everything a command does outside the vast.ai API; each field can be replaced."""

    say: Callable[[str], None] = _say
    confirm: Callable[[str], bool] = ask
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    ssh_ready: Callable[[str, int], bool] = ssh_answers
    deploy: Callable[[Sequence[str], Mapping[str, str]], None] = deploy
    check: Callable[[Sequence[str], Mapping[str, str]], None] = check
    tunnel: Callable[[Sequence[str], Mapping[str, str]], str] = tunnel
    read_host: Callable[[Mapping[str, Any]], HostReport] = read_host
    poll_seconds: float = 10.0
    env: dict[str, str] = field(default_factory=dict)  # extra environment for pyinfra/pytest
