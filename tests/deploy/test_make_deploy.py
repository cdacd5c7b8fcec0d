"""`make deploy`, as the README gives it, with a tunnel already open on the default local port.

Runs against the tests' own fleet (tests/deployed.py: its fleet directory and secrets), so the
user's fleet and tunnel are never touched. The tunnel is opened by the tunnel helper itself on
127.0.0.1:8001 (the default) unless something already holds that port — which is the case
under test either way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fleet.tunnel import DEFAULT_LOCAL_PORT, port_in_use, wait_for_port
from tests.deployed import FLEET_SIZE, REPO, DeployedFleet

pytestmark = pytest.mark.sandbox


@pytest.fixture
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


def test_make_deploy_succeeds_with_a_tunnel_open(
    deployed_fleet: DeployedFleet, open_tunnel: bool
) -> None:
    env = {**os.environ, **deployed_fleet.env, "SANDBOX_HOSTS": str(FLEET_SIZE)}
    done = subprocess.run(
        ["make", "--no-print-directory", "deploy"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    if open_tunnel:
        assert f"A tunnel is already open on 127.0.0.1:{DEFAULT_LOCAL_PORT}" in output
        assert f"export ANTHROPIC_BASE_URL=http://127.0.0.1:{DEFAULT_LOCAL_PORT}" in output
    else:  # something else holds the port: reported if it is a tunnel, else a free port
        assert (
            f"Local port {DEFAULT_LOCAL_PORT} is in use; using " in output
            or f"A tunnel is already open on 127.0.0.1:{DEFAULT_LOCAL_PORT}" in output
        )
    assert "export ANTHROPIC_BASE_URL=" in output
