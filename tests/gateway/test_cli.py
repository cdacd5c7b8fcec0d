"""`python -m fleet.gateway`: what the user reads when something is wrong before it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devkit.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def _gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet.gateway", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


def test_status_without_a_gateway_is_a_sentence() -> None:
    done = _gateway("status", "--stats-port", str(free_port()))
    assert done.returncode == 2
    assert "No gateway answers on 127.0.0.1:" in done.stderr
    assert "`make gateway`" in done.stderr


def test_a_taken_port_is_named_with_its_flag_and_a_free_one(taken_port: int) -> None:
    done = _gateway("run", "--port", str(taken_port), "--inventory", "inventories/none.py")
    assert done.returncode == 2
    assert f"Local port {taken_port} is already in use" in done.stderr
    assert "e.g. --port " in done.stderr
    done = _gateway("run", "--stats-port", str(taken_port), "--port", str(free_port()))
    assert "e.g. --stats-port " in done.stderr


def test_a_missing_inventory_is_a_sentence(tmp_path: Path) -> None:
    done = _gateway("run", "--inventory", str(tmp_path / "nope.py"),
                    "--port", str(free_port()), "--stats-port", str(free_port()))
    assert done.returncode == 2
    assert done.stderr.strip() == f"The inventory {tmp_path / 'nope.py'} does not exist."
