"""The tunnel supervisor re-starts a command that dies, and the gateway's ssh commands."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

from fleet import gateway
from fleet.supervisor import Supervisor


def _wait_new_pid(tunnels: Supervisor, name: str, old: int | None, timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = tunnels.pid(name)
        if pid is not None and pid != old:
            return pid
        time.sleep(0.02)
    raise AssertionError(f"{name} was not re-started within {timeout} s")


def test_a_killed_command_is_restarted_within_seconds() -> None:
    log = io.StringIO()
    with Supervisor({"one": ["sleep", "60"], "two": ["sleep", "60"]}, log=log) as tunnels:
        first = _wait_new_pid(tunnels, "one", None)
        other = _wait_new_pid(tunnels, "two", None)
        killed_at = time.monotonic()
        os.kill(first, signal.SIGKILL)
        second = _wait_new_pid(tunnels, "one", first)
        assert time.monotonic() - killed_at < 2
        assert tunnels.restarts == {"one": 1, "two": 0}
        assert tunnels.pid("two") == other
    assert "one: tunnel exited with status -9; re-opening it in 0.5 s." in log.getvalue()
    for pid in (second, other):  # stopped and reaped
        assert not os.path.exists(f"/proc/{pid}")


def test_a_command_failing_at_once_backs_off() -> None:
    log = io.StringIO()
    with Supervisor({"bad": ["false"]}, log=log):
        deadline = time.monotonic() + 20
        while log.getvalue().count("\n") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    delays = [line.rsplit(" in ", 1)[1] for line in log.getvalue().splitlines()]
    assert delays[:3] == ["0.5 s.", "1 s.", "2 s."]


def test_an_exit_is_reported_with_the_last_line_the_command_wrote(tmp_path: Path) -> None:
    log = io.StringIO()
    command = ["sh", "-c", "echo 'ssh: connect to host 10.0.0.5 port 22: Connection refused' >&2;"
               " exit 255"]
    with Supervisor({"vast-1": command}, log=log, output_dir=tmp_path):
        deadline = time.monotonic() + 20
        while not log.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert log.getvalue().splitlines()[0] == (
        "vast-1: tunnel exited with status 255 (ssh: connect to host 10.0.0.5 port 22: "
        "Connection refused); re-opening it in 0.5 s.")


def test_gateway_tunnels_use_the_inventory_ssh_settings_and_never_prompt() -> None:
    data = {"proxy_port": 8000, "ssh_hostname": "10.0.0.5", "ssh_port": 41022,
            "ssh_user": "root", "ssh_key": "/keys/id", "ssh_known_hosts_file": "/kh"}
    argv = gateway.tunnel_commands([{"name": "vast-1", "data": data}], {"vast-1": 40123})["vast-1"]
    assert argv[:4] == ["ssh", "-N", "-L", "40123:127.0.0.1:8000"]
    assert argv[-1] == "root@10.0.0.5"
    options = {argv[i + 1] for i, word in enumerate(argv) if word == "-o"}
    assert {"UserKnownHostsFile=/kh", "IdentitiesOnly=yes", "ExitOnForwardFailure=yes",
            "ServerAliveInterval=5", "BatchMode=yes"} <= options
    assert argv[argv.index("-i") + 1] == "/keys/id" and argv[argv.index("-p") + 1] == "41022"
