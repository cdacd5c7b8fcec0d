"""The real deploy against the sandbox host (a vast-shaped container without systemd).

One fresh sandbox (own state dir, container layer and port) per module; Ollama is the API
double's release archive served from this machine (sandbox/release.py), nothing else is
faked. Runs: first deploy -> second deploy changes nothing -> a wrong checksum stops the host.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Sandbox, build_rootfs, default_rootfs
from sandbox.release import served_release

pytestmark = pytest.mark.sandbox
REPO = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).with_name("pyinfra")
# Speed is a benchmark, not a test: with DEPLOY_TIMES_FILE set (`make bench-deploy`) the
# first-run and re-run times are written there for bench/ to report (goal: re-run <= 15 s).
DEPLOY_TIMES_FILE = os.environ.get("DEPLOY_TIMES_FILE", "")
# The sandbox shares this machine's network: another deployed sandbox (or anything else on
# these ports) would answer the deploy's checks instead of this one's services.
SERVICE_PORTS = (11434, 6379, 8000)


class Deploy:
    """Runs `pyinfra -y --json inventories/local.py deploy.py` against one sandbox."""

    def __init__(self, sandbox: Sandbox, secrets_dir: Path) -> None:
        self.sandbox = sandbox
        self.env = {
            **os.environ,
            "SANDBOX_STATE_DIR": str(sandbox.state_dir),
            "SELFHOST_SECRETS_DIR": str(secrets_dir),
        }

    def run(self, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        result = subprocess.run(
            [str(PYINFRA), "-y", "--json", *args, "inventories/local.py", "deploy.py"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        return result, time.monotonic() - started


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deploy]:
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root (debootstrap, namespaces, mounts)")
    if shutil.which("debootstrap") is None or shutil.which("zstd") is None:
        pytest.skip("debootstrap and zstd are needed: apt-get install debootstrap zstd")
    busy = [port for port in SERVICE_PORTS if _listening(port)]
    if busy:
        pytest.fail(f"127.0.0.1 ports {busy} are taken; stop the other sandbox (or service) first")
    build_rootfs()
    state = tmp_path_factory.mktemp("sandbox-state")
    box = Sandbox(
        state, rootfs=default_rootfs(), data_dir=tmp_path_factory.mktemp("layer"), ssh_port=0
    )
    try:
        with served_release(tmp_path_factory.mktemp("release"), state_dir=state):
            box.up()
            yield Deploy(box, tmp_path_factory.mktemp("secrets"))
    finally:
        box.destroy()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _summary(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.stdout.strip(), result.stderr[-3000:]
    return json.loads(result.stdout)["results"]


@pytest.fixture(scope="module")
def first_run(deploy: Deploy) -> tuple[subprocess.CompletedProcess[str], float]:
    return deploy.run()


@pytest.fixture(scope="module")
def second_run(
    deploy: Deploy, first_run: tuple[subprocess.CompletedProcess[str], float]
) -> tuple[subprocess.CompletedProcess[str], float]:
    assert first_run[0].returncode == 0, "the first run failed"
    return deploy.run()


def test_first_run_succeeds_for_every_role(first_run) -> None:
    result, seconds = first_run
    assert result.returncode == 0, result.stderr[-4000:]
    results = _summary(result)
    assert results["totals"]["error"] == 0
    for role in ("Deploy Ollama", "Deploy Redis", "Deploy proxy"):
        ops = [op for op in results["operations"] if op["name"].startswith(role)]
        assert ops and not any(op["error"] for op in ops), role
    changed = [op["name"] for op in results["operations"] if op["success"]]
    print(f"first run: {seconds:.1f}s, changed: {changed}")


def test_programs_run_under_supervisor(deploy: Deploy, first_run) -> None:
    # A program is STARTING for `startsecs` after its spawn, which may be just now.
    deadline = time.monotonic() + 15
    while True:
        lines = deploy.sandbox.run("supervisorctl status", check=False).stdout.splitlines()
        states = {line.split()[0]: line.split()[1] for line in lines if len(line.split()) > 1}
        if all(states.get(p) == "RUNNING" for p in ("ollama", "redis", "proxy")):
            break
        assert time.monotonic() < deadline, states
        time.sleep(1)


def test_services_listen_on_loopback_only(deploy: Deploy, first_run) -> None:
    listening = deploy.sandbox.run("ss -ltnH").stdout
    for port in (11434, 6379, 8000):
        assert f"127.0.0.1:{port} " in listening
        assert f"0.0.0.0:{port} " not in listening and f"*:{port} " not in listening


def test_proxy_reports_healthy(deploy: Deploy, first_run) -> None:
    health = json.loads(deploy.sandbox.run("curl -fsS http://127.0.0.1:8000/health").stdout)
    assert health["status"] in ("ok", "healthy"), health


def test_second_run_changes_nothing(first_run, second_run) -> None:
    result, seconds = second_run
    assert result.returncode == 0, result.stderr[-4000:]
    totals = _summary(result)["totals"]
    changed = [op["name"] for op in _summary(result)["operations"] if op["success"]]
    assert totals["success"] == 0 and totals["error"] == 0, changed
    if DEPLOY_TIMES_FILE:
        times = {
            "first_run_s": round(first_run[1], 1),
            "rerun_s": round(seconds, 1),
            "inventory": "inventories/local.py (sandbox)",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        Path(DEPLOY_TIMES_FILE).write_text(json.dumps(times, indent=2) + "\n")


def test_wrong_checksum_stops_the_host_naming_both_digests(deploy: Deploy, second_run) -> None:
    wrong = "0" * 64
    result, _ = deploy.run("--data", f'ollama_sha256="{wrong}"')
    assert result.returncode == 1
    assert f"but {wrong} was expected" in result.stderr
    assert "has SHA-256 " in result.stderr and "refusing to install it" in result.stderr
