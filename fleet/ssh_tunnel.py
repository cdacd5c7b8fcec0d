"""The SSH tunnel to a host's proxy_app: its ``ssh`` command and the local port it listens on.

A local port that is taken is never an error when only printing: a tunnel to this deployment
(its proxy_app accepts the key) already open there or on a later port is reused, else the next
free port is taken. Only opening on a port the user named is an error.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from devkit.ports import port_in_use
from fleet.errors import TunnelError

DEFAULT_LOCAL_PORT = 8001


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
