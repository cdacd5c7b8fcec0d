"""Session fixture: the sandbox host, deployed once per test session with `deploy.py`.

Used by tests/infra when no ``--inventory``/``--hosts`` is given (the full suite). It starts the
sandbox (``sandbox``, default state dir) unless it already runs, serves the Ollama double's
release archive (``sandbox.release``), runs ``pyinfra -y inventories/local.py deploy.py``
and loads the inventory while the archive is still announced (group_data/local.py needs it).
The archive stays served, and a sandbox it started is stopped, at the end of the session.

The sandbox shares the control machine's network, so only one deployed sandbox can hold
127.0.0.1:11434/6379/8000 at a time: this fixture uses *the* sandbox (`make sandbox-up`'s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.tunnel import REPO, TunnelError, load_inventory
from sandbox import Sandbox, SandboxError
from sandbox.release import served_release

PYINFRA = Path(sys.executable).with_name("pyinfra")
INVENTORY = REPO / "inventories" / "local.py"
DEPLOY_TIMEOUT = 1800


@pytest.fixture(scope="session")
def deployed_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """The deployed sandbox as ``load_inventory`` entries (name, groups, data)."""
    if os.geteuid() != 0:
        pytest.skip("the deployed sandbox needs root (debootstrap, namespaces, mounts)")
    if shutil.which("debootstrap") is None:
        pytest.skip("the deployed sandbox needs debootstrap (make apt)")
    box = Sandbox()
    started_here = not box.is_running()
    try:
        box.up(log=lambda *_: None)
    except SandboxError as exc:
        pytest.fail(f"The sandbox host did not start: {exc}", pytrace=False)
    env = {**os.environ, "SANDBOX_STATE_DIR": str(box.state_dir), "PYINFRA_YES": "1"}
    try:
        # The archive stays announced all session: group_data/local.py reads its version and
        # digest whenever the inventory is loaded (the tunnel helper loads it too).
        with served_release(tmp_path_factory.mktemp("ollama-release"), state_dir=box.state_dir):
            done = subprocess.run(
                [str(PYINFRA), "-y", str(INVENTORY), "deploy.py"],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=DEPLOY_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
                pytest.fail(
                    f"`pyinfra -y inventories/local.py deploy.py` failed on the sandbox "
                    f"(exit {done.returncode}):\n{tail}",
                    pytrace=False,
                )
            try:
                hosts = load_inventory(INVENTORY, env={"SANDBOX_STATE_DIR": str(box.state_dir)})
            except TunnelError as exc:
                pytest.fail(str(exc), pytrace=False)
            yield hosts
    finally:
        if started_here:
            box.down()
