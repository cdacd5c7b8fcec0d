"""The real host steps' command lines (pyinfra deploy, testinfra checks) and their failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleet import steps
from fleet.errors import FleetError


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append({"argv": argv, **kwargs})
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(steps.subprocess, "run", run)
    return seen


def test_deploy_limits_pyinfra_to_the_hosts(runs: list[dict[str, Any]]) -> None:
    steps.deploy(["vast-1", "vast-2"], {"VAST_LABEL": "x"})
    (run,) = runs
    assert run["argv"][0].endswith("/pyinfra")
    assert run["argv"][1:] == [
        "-y",
        "inventories/vast.py",
        "deploy.py",
        "--limit",
        "vast-1",
        "--limit",
        "vast-2",
    ]
    assert run["cwd"] == steps.REPO and run["env"]["VAST_LABEL"] == "x"


def test_checks_select_the_hosts(runs: list[dict[str, Any]]) -> None:
    steps.check(["vast-1", "vast-2"], {})
    (run,) = runs
    assert run["argv"][0].endswith("/pytest")
    assert run["argv"][run["argv"].index("--inventory") + 1] == "inventories/vast.py"
    assert run["argv"][-4:] == ["--limit", "vast-1", "--limit", "vast-2"]  # exact names


def test_a_failed_step_is_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        steps.subprocess, "run", lambda argv, **_: subprocess.CompletedProcess(argv, 1)
    )
    with pytest.raises(FleetError, match=r"^The deploy to vast-1 failed \(exit 1\); its output"):
        steps.deploy(["vast-1"], {})


def test_the_host_checks_select_exact_names(tmp_path: Path) -> None:
    """`--limit vast-h-1` collects vast-h-1's checks only, never vast-h-10's (as `-k` would)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "VAST_HOSTS": "h:1,h:10", "VAST_KNOWN_HOSTS": str(tmp_path / "kh")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/infra", "--inventory", "inventories/vast.py", "--limit", "vast-h-1"],
        cwd=steps.REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert any("[vast-h-1]" in line for line in ids), ids
    assert not [line for line in ids if "vast-h-10" in line]
