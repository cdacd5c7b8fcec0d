"""Session fixtures: the tests' own sandbox fleet, deployed once with deploy.py, then restarted.

``deployed_fleet`` starts a two-host fleet in a fleet directory, container layers and secrets
folder of its own — never the user's `.sandbox/` or `secrets/`, so `make test` runs beside a
deployed fleet: sandbox-1 boots systemd (a user's own server: units), sandbox-2 is a vast.ai-shaped
container (supervisord). It runs ``pyinfra -y --json inventories/local.py deploy.py`` once against
both hosts in parallel. ``restarted_hosts`` then restarts both with ``python -m sandbox restart``
(every process killed; the container boots through sshd and /root/onstart.sh, the systemd host
reboots) and waits for proxy_app's /health with no deploy; the host checks in tests/infra run
after it, so every check proves the services came back by themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import TunnelError
from fleet.hostdata import load_inventory
from sandbox import Fleet, SandboxError, host_names

REPO = Path(__file__).resolve().parents[1]
PYINFRA = Path(sys.executable).with_name("pyinfra")
INVENTORY = REPO / "inventories" / "local.py"
FLEET_KINDS = ["systemd", "container"]
FLEET_SIZE = len(FLEET_KINDS)
FLEET_HOSTS = host_names(FLEET_SIZE)
KIND = dict(zip(FLEET_HOSTS, FLEET_KINDS, strict=True))
HEALTHY_WITHIN = 60.0
DEPLOY_TIMEOUT = 1800


@dataclass
class Run:
    """One pyinfra run: its process result and wall time."""

    result: subprocess.CompletedProcess[str]
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The ``results`` object of ``--json`` output."""
        assert self.result.stdout.strip(), self.result.stderr[-3000:]
        return json.loads(self.result.stdout)["results"]  # type: ignore[no-any-return]

    def changed(self) -> list[str]:
        """Names of the operations that changed something."""
        return [op["name"] for op in self.summary()["operations"] if op["success"]]


@dataclass
class DeployedFleet:
    """The tests' fleet, the environment reaching it, and its first deploy."""

    fleet: Fleet
    env: dict[str, str]
    first: Run | None = None
    runs: list[Run] = field(default_factory=list)

    def deploy(self, *args: str) -> Run:
        """Run ``pyinfra -y --json [args] inventories/local.py deploy.py`` against the fleet."""
        started = time.monotonic()
        result = subprocess.run(
            [str(PYINFRA), "-y", "--json", *args, str(INVENTORY), "deploy.py"],
            cwd=REPO,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=DEPLOY_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        run = Run(result, time.monotonic() - started)
        self.runs.append(run)
        return run

    def hosts(self) -> list[dict[str, Any]]:
        """The fleet as ``load_inventory`` entries (name, groups, data over role defaults)."""
        try:
            return load_inventory(INVENTORY, env=self.env)
        except TunnelError as exc:
            pytest.fail(str(exc), pytrace=False)

    def ssh(self, name: str, command: str) -> subprocess.CompletedProcess[str]:
        """Run a command on one host over its ssh door (never raises)."""
        return self.fleet.host(name).run(command, check=False, timeout=120)


@dataclass
class Restart:
    """A host restarted like a vast.ai container, and how long its services took to return."""

    name: str
    seconds_to_healthy: float
    health: dict[str, Any]
    before: dict[str, str]
    after: dict[str, str]


def require_sandbox(*tools: str) -> None:
    """Skip unless this machine can run sandbox hosts: root, debootstrap, slirp4netns, `tools`."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox fleet needs root (debootstrap, namespaces, mounts)")
    wanted = ("debootstrap", "slirp4netns", *tools)
    missing = [tool for tool in wanted if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the sandbox fleet needs {', '.join(missing)} (make apt installs them)")


@pytest.fixture(scope="session")
def deployed_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedFleet]:
    """A two-host sandbox fleet of the tests' own, deployed once."""
    require_sandbox("zstd", "systemd-nspawn")
    root = tmp_path_factory.mktemp("fleet")
    fleet = Fleet(root, data_root=tmp_path_factory.mktemp("layers"), base_port=0)
    env = {
        "SANDBOX_STATE_DIR": str(root),
        "SELFHOST_SECRETS_DIR": str(tmp_path_factory.mktemp("secrets")),
        "PYINFRA_YES": "1",
    }
    try:
        try:
            fleet.up(FLEET_SIZE, kinds=FLEET_KINDS, engines=["ollama"], log=lambda *_: None)
        except SandboxError as exc:
            pytest.fail(f"The sandbox fleet did not start: {exc}", pytrace=False)
        deployed = DeployedFleet(fleet, env)
        deployed.first = deployed.deploy()
        if deployed.first.result.returncode != 0:
            tail = "\n".join(deployed.first.result.stderr.strip().splitlines()[-25:])
            pytest.fail(f"The first deploy of the fleet failed:\n{tail}", pytrace=False)
        yield deployed
    finally:
        fleet.destroy()


SERVICES = {"ollama": "ollama", "redis": "redis-server", "proxy": "proxy"}


def _processes(deployed: DeployedFleet, name: str) -> dict[str, str]:
    """The service manager's pid and each service's main pid on one host."""
    if KIND[name] == "systemd":
        units = " ".join(SERVICES.values())
        command = f"systemctl show -p MainPID --value {units}; cat /proc/1/stat | cut -d' ' -f22"
        *mains, boot = deployed.ssh(name, command).stdout.split() or ["", ""]
        return {"manager": boot, "programs": " ".join(mains)}  # PID 1's start time
    out = deployed.ssh(name, "supervisorctl pid; supervisorctl pid all").stdout.split()
    return {"manager": out[0], "programs": " ".join(out[1:])} if out else {}


@pytest.fixture(scope="session")
def restarted_hosts(deployed_fleet: DeployedFleet) -> list[Restart]:
    """Every host after `python -m sandbox restart`, healthy again without a deploy."""
    return [_restart(deployed_fleet, name) for name in FLEET_HOSTS]


def _restart(deployed_fleet: DeployedFleet, name: str) -> Restart:
    before = _processes(deployed_fleet, name)
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "restart", name],
        cwd=REPO,
        env={**os.environ, **deployed_fleet.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    started = time.monotonic()
    health: dict[str, Any] = {}
    while time.monotonic() - started < HEALTHY_WITHIN:
        out = deployed_fleet.ssh(name, "curl -sS --max-time 3 http://127.0.0.1:8000/health")
        try:
            health = json.loads(out.stdout)
        except ValueError:
            health = {}
        if health.get("status") == "healthy":  # Ollama, the model and Redis over TLS
            break
        time.sleep(1)
    else:
        log = deployed_fleet.ssh(
            name, "cat /var/log/onstart.log; supervisorctl status; systemctl --failed"
        ).stdout
        pytest.fail(
            f"{name} was not healthy within {HEALTHY_WITHIN:.0f}s of its restart; "
            f"last /health {health}; onstart log and programs:\n{log}",
            pytrace=False,
        )
    seconds = time.monotonic() - started
    return Restart(name, seconds, health, before, _processes(deployed_fleet, name))
