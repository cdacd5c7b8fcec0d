"""`python -m fleet` and the make targets as a user runs them, against the vast.ai double."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fleet.conftest import load_instances
from vast_double import VastDouble

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str, env: dict[str, str], tool: str = "python") -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    # make: never reinstall the venv from inside a test (-o: treat it as up to date)
    make = ["make", "--no-print-directory", "-o", ".venv/.installed"]
    command = [sys.executable, "-m", "fleet", *argv] if tool == "python" else [*make, *argv]
    return subprocess.run(
        command,
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("command", ["", "up", "down", "stop", "start", "status"])
def test_help(command: str, tmp_path: Path) -> None:
    done = run(*([command] if command else []), "--help", env={"HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "usage: python -m fleet" in done.stdout


def test_no_api_key_is_a_sentence(tmp_path: Path) -> None:
    done = run("status", env={"HOME": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.startswith("No vast.ai API key found (looked at VAST_API_KEY, ")
    assert "run `vastai set api-key KEY` with a key from https://cloud.vast.ai/" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_refused_key_is_a_sentence(vast: VastDouble, env: dict[str, str]) -> None:
    done = run("status", env={**env, "VAST_API_KEY": "wrong"})
    assert done.returncode == 2
    assert "The vast.ai API refused the API key while listing instances (HTTP 401)" in done.stderr


def test_status_json_and_down_through_the_command(vast: VastDouble, env: dict[str, str]) -> None:
    rows = load_instances()
    for row in rows:
        row["label"] = "mine" if row["actual_status"] != "running" else row["label"]
    vast.market.instances.extend(rows)
    env = {**env, "VAST_LABEL": "mine"}
    done = run("status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    mine = [r["id"] for r in rows if r["label"] == "mine"]
    assert [r["id"] for r in status["instances"]] == mine
    assert status["prices"]["source"].startswith("https://")

    done = run("down", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in vast.market.instances] == [
        r["id"] for r in rows if r["label"] != "mine"
    ]


def test_make_up_with_no_matching_offer(vast: VastDouble, env: dict[str, str]) -> None:
    done = run("up", "GPU=H100", "YES=1", env=env, tool="make")
    assert done.returncode != 0
    assert "No vast.ai offer matched: the filter GPU H100 excluded the most offers" in done.stderr
    assert vast.requests("PUT") == []


def test_the_any_label_is_refused(vast: VastDouble, env: dict[str, str]) -> None:
    done = run("down", "--yes", env={**env, "VAST_LABEL": "*"})
    assert done.returncode == 2
    assert done.stderr.startswith("VAST_LABEL=* selects every instance for the inventory only;")
    assert vast.requests() == []
