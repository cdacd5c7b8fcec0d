"""The real deploy against the tests' two-host sandbox fleet: sandbox-1 boots systemd (units),
sandbox-2 is a vast.ai-shaped container (supervisord, no systemd).

Ollama is the API double's release archive served by the fleet (sandbox/release.py); nothing
else is faked. The fleet is deployed once per session (tests/deployed.py): both hosts in
parallel; then both are restarted (the container like vast.ai's stop/start, the systemd host
rebooted); then a second run must change nothing on either host; then a wrong checksum stops the
host, naming both digests, and a unit whose hardening stops its service fails the deploy with the
unit's journal.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from roles.services import ONSTART_COMMAND
from sandbox.system import cmdline, pid_namespace, pids_in_namespace
from tests.deployed import FLEET_HOSTS, HEALTHY_WITHIN, KIND, DeployedFleet, Restart, Run

pytestmark = pytest.mark.sandbox
SERVICE_PORTS = (11434, 6379, 8000)
PROGRAMS = ("ollama", "redis", "proxy")
UNITS = ("ollama", "redis-server", "proxy")
CONTAINERS = [name for name in FLEET_HOSTS if KIND[name] == "container"]
SYSTEMD_HOSTS = [name for name in FLEET_HOSTS if KIND[name] == "systemd"]


@pytest.fixture(scope="module")
def first_run(deployed_fleet: DeployedFleet) -> Run:
    assert deployed_fleet.first is not None
    return deployed_fleet.first


@pytest.fixture(scope="module")
def second_run(deployed_fleet: DeployedFleet, restarted_hosts: list[Restart]) -> Run:
    """The idempotent re-run, after both hosts' restarts: nothing may need a change."""
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


@pytest.mark.parametrize("name", SYSTEMD_HOSTS)
def test_units_run_under_systemd_with_no_failed_unit(
    deployed_fleet: DeployedFleet, name: str
) -> None:
    units = " ".join(UNITS)
    out = deployed_fleet.ssh(name, f"systemctl is-active {units}; systemctl is-enabled {units}")
    assert out.stdout.split() == ["active"] * 3 + ["enabled"] * 3, out.stdout + out.stderr
    failed = deployed_fleet.ssh(name, "systemctl --failed --no-legend --plain").stdout
    assert failed.strip() == "", failed
    assert deployed_fleet.ssh(name, "command -v supervisorctl").returncode != 0


@pytest.mark.parametrize("name", CONTAINERS)
def test_programs_run_under_supervisor(deployed_fleet: DeployedFleet, name: str) -> None:
    # A program is STARTING for `startsecs` after its spawn, which may be just now.
    deadline = time.monotonic() + 15
    while (states := _program_states(deployed_fleet, name)) and not all(
        states.get(p) == "RUNNING" for p in PROGRAMS
    ):
        assert time.monotonic() < deadline, states
        time.sleep(1)
    assert all(states.get(p) == "RUNNING" for p in PROGRAMS), states


@pytest.mark.parametrize("name", CONTAINERS)
def test_onstart_hook_is_registered(deployed_fleet: DeployedFleet, name: str) -> None:
    onstart = deployed_fleet.ssh(name, "cat /root/onstart.sh").stdout
    assert ONSTART_COMMAND in onstart.splitlines()


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
    machine's; the only listener a host has here is its ssh door, held by its slirp4netns."""
    ours = os.readlink("/proc/self/ns/net")
    held = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout.splitlines()
    for box in deployed_fleet.fleet.hosts():
        init = box.init_pid()
        assert init is not None
        namespace = pid_namespace(init)
        assert namespace is not None
        pids = pids_in_namespace(namespace)
        # sshd, the service manager and the three services at least
        assert len(pids) >= 5, [cmdline(pid) for pid in pids]
        for pid in pids:
            assert os.readlink(f"/proc/{pid}/ns/net") != ours, cmdline(pid)
            assert not [line for line in held if f"pid={pid}," in line], cmdline(pid)
        slirp = int(box.slirp_pid_path.read_text())
        doors = [line.split()[3] for line in held if f"pid={slirp}," in line]
        assert doors == [f"127.0.0.1:{box.ssh_port}"], doors


@pytest.mark.parametrize("name", FLEET_HOSTS)
def test_proxy_reports_healthy(deployed_fleet: DeployedFleet, name: str) -> None:
    health = deployed_fleet.ssh(name, "curl -fsS http://127.0.0.1:8000/health").stdout
    assert '"status":"healthy"' in health.replace(" ", ""), health


@pytest.mark.parametrize("index", range(len(FLEET_HOSTS)), ids=FLEET_HOSTS)
def test_restarted_host_serves_again_without_a_deploy(
    restarted_hosts: list[Restart], index: int
) -> None:
    restart = restarted_hosts[index]
    assert restart.seconds_to_healthy < HEALTHY_WITHIN
    assert restart.health["status"] == "healthy", restart.health
    # Every process is new: the service manager and each service run anew.
    assert restart.after["manager"] != restart.before["manager"]
    assert restart.after["programs"] != restart.before["programs"]
    print(f"{restart.name} ({KIND[restart.name]}) healthy {restart.seconds_to_healthy:.1f}s after")


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


@pytest.mark.parametrize("name", SYSTEMD_HOSTS)
def test_a_unit_its_hardening_breaks_fails_the_deploy_with_its_journal(
    deployed_fleet: DeployedFleet, second_run: Run, name: str
) -> None:
    """A hardening option that hides the venv stops proxy_app at exec: the deploy says so."""
    breaking = "proxy_unit_extra=InaccessiblePaths=/opt/proxy_app"
    try:
        run = deployed_fleet.deploy("--limit", name, "--data", breaking)
        assert run.result.returncode == 1
        stderr = run.result.stderr
        assert "The unit proxy.service did not stay active after its start" in stderr, stderr[
            -3000:
        ]
        assert "Last lines of journalctl -u proxy.service:" in stderr
        # the journal's own words: the service's exec failed under the namespace setup
        assert "proxy.service: Failed at step EXEC" in stderr, stderr[-3000:]
    finally:
        restored = deployed_fleet.deploy("--limit", name)
        assert restored.result.returncode == 0, restored.result.stderr[-3000:]
