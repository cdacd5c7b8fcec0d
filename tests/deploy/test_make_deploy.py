"""`make deploy`, as the README gives it, with a tunnel already open on the default local port:
it succeeds, shows one line per step (and per host), and no secret reaches its output, its log
or `make tunnel`'s output.

Runs against the tests' own fleet (tests/deployed.py: its fleet directory and secrets), so the
user's fleet and tunnel are never touched. The tunnel is opened by the tunnel helper itself on
127.0.0.1:8001 (the default) unless something already holds that port — which is the case
under test either way.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.ports import port_in_use
from fleet.ssh_tunnel import DEFAULT_LOCAL_PORT, wait_for_port
from tests.deployed import FLEET_HOSTS, FLEET_SIZE, REPO, DeployedFleet

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def open_tunnel(deployed_fleet: DeployedFleet) -> Iterator[bool]:
    """A tunnel to sandbox-1 on the default port; yields whether this fixture opened it."""
    if port_in_use(DEFAULT_LOCAL_PORT):
        yield False
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet.tunnel", "--open", "--host", "sandbox-1"],
        cwd=REPO,
        env={**os.environ, **deployed_fleet.env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(DEFAULT_LOCAL_PORT, proc, timeout=60)
        yield True
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


@dataclass
class MakeRun:
    """One `make …` run against the tests' fleet: its output and its log file."""

    done: subprocess.CompletedProcess[str]
    log: str

    @property
    def output(self) -> str:
        return self.done.stdout + self.done.stderr


def _make(target: str, fleet: DeployedFleet, log: Path) -> MakeRun:
    env = {**os.environ, **fleet.env, "SANDBOX_HOSTS": str(FLEET_SIZE), "DEPLOY_LOG": str(log)}
    done = subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return MakeRun(done, log.read_text() if log.exists() else "")


@pytest.fixture(scope="module")
def make_deploy(
    deployed_fleet: DeployedFleet, open_tunnel: bool, tmp_path_factory: pytest.TempPathFactory
) -> tuple[MakeRun, bool]:
    """`make deploy` as the README gives it, with a tunnel open; whether we opened it."""
    log = tmp_path_factory.mktemp("make-deploy") / "deploy.log"
    return _make("deploy", deployed_fleet, log), open_tunnel


def secret_values(secrets: Path) -> list[str]:
    """Every secret the deploy made: whole values, and each line of a PEM private key."""
    values = []
    for path in secrets.rglob("*"):
        if not path.is_file() or path.suffix == ".crt":
            continue
        text = path.read_text().strip()
        if "PRIVATE KEY" in text:
            values += [line for line in text.splitlines() if len(line) > 20 and "-" not in line]
        else:
            values.append(text)
    return [v for v in values if len(v) >= 16]


def test_make_deploy_succeeds_with_a_tunnel_open(make_deploy: tuple[MakeRun, bool]) -> None:
    run, open_tunnel = make_deploy
    output = run.output
    assert run.done.returncode == 0, output[-4000:]
    if open_tunnel:
        assert f"A tunnel is already open on 127.0.0.1:{DEFAULT_LOCAL_PORT}" in output
        assert f"export ANTHROPIC_BASE_URL=http://127.0.0.1:{DEFAULT_LOCAL_PORT}" in output
    else:  # something else holds the port: reported if it is a tunnel, else a free port
        assert f"Local port {DEFAULT_LOCAL_PORT} " in output or (
            f"A tunnel is already open on 127.0.0.1:{DEFAULT_LOCAL_PORT}" in output
        )
    assert "export ANTHROPIC_BASE_URL=" in output


def test_make_deploy_shows_one_line_per_step_in_order(make_deploy: tuple[MakeRun, bool]) -> None:
    run, _ = make_deploy
    lines = run.done.stdout.splitlines()
    steps = [line for line in lines if " … " in line]
    names = [line.split(" … ")[0].strip() for line in steps]
    assert names == [
        "packages", "venv", "Claude Code CLI", "rootfs", "sandbox hosts", "deploy", "host checks"
    ]  # fmt: skip
    for line in steps:
        assert re.search(r" … (\d+\.\d s|\d+ min \d\d s)(  .*)?$", line), line
    hosts = [line.split()[0] for line in lines if line.startswith("    sandbox-")]
    assert hosts == list(FLEET_HOSTS)
    assert "--> Starting operation" not in run.done.stdout  # pyinfra's own output: the log only
    assert "--> Starting operation" in run.log


def test_no_secret_reaches_make_deploy_make_tunnel_or_the_log(
    make_deploy: tuple[MakeRun, bool], deployed_fleet: DeployedFleet, tmp_path: Path
) -> None:
    run, _ = make_deploy
    tunnel = _make("tunnel", deployed_fleet, tmp_path / "unused.log")
    assert tunnel.done.returncode == 0, tunnel.output
    secrets = secret_values(Path(deployed_fleet.env["SELFHOST_SECRETS_DIR"]))
    assert len(secrets) >= 3  # the proxy key, the Redis password, the CA's key at least
    for text, where in [(run.output, "make deploy"), (run.log, "deploy.log"),
                        (tunnel.output, "make tunnel")]:  # fmt: skip
        leaked = [s[:6] + "…" for s in secrets if s in text]
        assert not leaked, f"{where} shows secrets starting {leaked}"
    assert 'export ANTHROPIC_AUTH_TOKEN="$(cat ' in tunnel.output
