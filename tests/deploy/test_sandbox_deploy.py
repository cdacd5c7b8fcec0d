"""The real deploy against the tests' two-host sandbox fleet (vast-shaped containers, no systemd).

Ollama is the API double's release archive served by the fleet (sandbox/release.py); nothing
else is faked. The fleet is deployed once per session (tests/deployed.py): both hosts in
parallel; then sandbox-2 is restarted like a vast.ai container; then a second run must change
nothing on either host; then a wrong checksum stops the host, naming both digests.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from sandbox.system import cmdline, pid_namespace, pids_in_namespace
from tests.deployed import FLEET_HOSTS, HEALTHY_WITHIN, DeployedFleet, Restart, Run

pytestmark = pytest.mark.sandbox
SERVICE_PORTS = (11434, 6379, 8000)
PROGRAMS = ("ollama", "redis", "proxy")


@pytest.fixture(scope="module")
def first_run(deployed_fleet: DeployedFleet) -> Run:
    assert deployed_fleet.first is not None
    return deployed_fleet.first


@pytest.fixture(scope="module")
def second_run(deployed_fleet: DeployedFleet, restarted_host: Restart) -> Run:
    """The idempotent re-run, after sandbox-2's restart: nothing may need a change."""
    return deployed_fleet.deploy()


def test_first_run_succeeds_for_every_role_on_every_host(first_run: Run) -> None:
    assert first_run.result.returncode == 0, first_run.result.stderr[-4000:]
    results = first_run.summary()
    assert results["totals"]["error"] == 0
    for role in ("Deploy Ollama", "Deploy Redis", "Deploy proxy"):
        ops = [op for op in results["operations"] if op["name"].startswith(role)]
        assert ops and not any(op["error"] for op in ops), role
        assert any(sorted(op["success"]) == FLEET_HOSTS for op in ops), role
    print(f"first run (2 hosts): {first_run.seconds:.1f}s, changed: {first_run.changed()}")


def _program_states(deployed: DeployedFleet, name: str) -> dict[str, str]:
    lines = deployed.ssh(name, "supervisorctl status").stdout.splitlines()
    return {line.split()[0]: line.split()[1] for line in lines if len(line.split()) > 1}


@pytest.mark.parametrize("name", FLEET_HOSTS)
def test_programs_run_under_supervisor(deployed_fleet: DeployedFleet, name: str) -> None:
    # A program is STARTING for `startsecs` after its spawn, which may be just now.
    deadline = time.monotonic() + 15
    while (states := _program_states(deployed_fleet, name)) and not all(
        states.get(p) == "RUNNING" for p in PROGRAMS
    ):
        assert time.monotonic() < deadline, states
        time.sleep(1)
    assert all(states.get(p) == "RUNNING" for p in PROGRAMS), states


@pytest.mark.parametrize("name", FLEET_HOSTS)
def test_onstart_hook_is_registered(deployed_fleet: DeployedFleet, name: str) -> None:
    onstart = deployed_fleet.ssh(name, "cat /root/onstart.sh").stdout
    assert "sh /opt/llm-selfhost/onstart.sh" in onstart.splitlines()


@pytest.mark.parametrize("name", FLEET_HOSTS)
def test_services_listen_on_the_hosts_own_loopback(
    deployed_fleet: DeployedFleet, name: str
) -> None:
    listening = deployed_fleet.ssh(name, "ss -ltnH").stdout
    for port in SERVICE_PORTS:
        assert f"127.0.0.1:{port} " in listening
        assert f"0.0.0.0:{port} " not in listening and f"*:{port} " not in listening


def test_no_service_port_is_reachable_from_the_control_machine(
    deployed_fleet: DeployedFleet,
) -> None:
    """Every process of every host lives in a network namespace other than the control
    machine's; the only listener the fleet holds here is each host's ssh door."""
    ours = os.readlink("/proc/self/ns/net")
    held = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout.splitlines()
    doors = {f"127.0.0.1:{box.ssh_port}" for box in deployed_fleet.fleet.hosts()}
    for box in deployed_fleet.fleet.hosts():
        init = box.init_pid()
        assert init is not None
        namespace = pid_namespace(init)
        assert namespace is not None
        pids = pids_in_namespace(namespace)
        # sshd, supervisord and the three programs at least
        assert len(pids) >= 5, [cmdline(pid) for pid in pids]
        for pid in pids:
            assert os.readlink(f"/proc/{pid}/ns/net") != ours, cmdline(pid)
            assert not [line for line in held if f"pid={pid}," in line], cmdline(pid)
    from_fleet = [line.split()[3] for line in held if "slirp4netns" in line]
    assert sorted(from_fleet) == sorted(doors)


@pytest.mark.parametrize("name", FLEET_HOSTS)
def test_proxy_reports_healthy(deployed_fleet: DeployedFleet, name: str) -> None:
    health = deployed_fleet.ssh(name, "curl -fsS http://127.0.0.1:8000/health").stdout
    assert '"status":"healthy"' in health.replace(" ", ""), health


def test_restarted_host_serves_again_without_a_deploy(restarted_host: Restart) -> None:
    assert restarted_host.seconds_to_healthy < HEALTHY_WITHIN
    assert restarted_host.health["status"] == "healthy", restarted_host.health
    # Every process is new: supervisord and each program run under other pids.
    assert restarted_host.after["supervisord"] != restarted_host.before["supervisord"]
    assert restarted_host.after["programs"] != restarted_host.before["programs"]
    print(f"{restarted_host.name} healthy {restarted_host.seconds_to_healthy:.1f}s after restart")


def test_second_run_changes_nothing(second_run: Run) -> None:
    assert second_run.result.returncode == 0, second_run.result.stderr[-4000:]
    totals = second_run.summary()["totals"]
    assert totals["success"] == 0 and totals["error"] == 0, second_run.changed()
    print(f"re-run (2 hosts): {second_run.seconds:.1f}s")


def test_wrong_checksum_stops_the_host_naming_both_digests(
    deployed_fleet: DeployedFleet, second_run: Run
) -> None:
    wrong = "0" * 64
    run = deployed_fleet.deploy("--limit", "sandbox-1", "--data", f'ollama_sha256="{wrong}"')
    assert run.result.returncode == 1
    assert f"but {wrong} was expected" in run.result.stderr
    assert "has SHA-256 " in run.result.stderr and "refusing to install it" in run.result.stderr
