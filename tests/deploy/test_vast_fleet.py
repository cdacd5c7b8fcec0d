"""The vast.ai fleet end to end: `make up/status/stop/start/down` against the vast.ai double,
whose rentals are real sandbox hosts (sandbox/vast_hooks.py).

The double runs in this process with a fleet directory, container layers, SSH key, known_hosts
and secrets folder of the test's own. `make up COUNT=2 YES=1` rents two instances, waits for
them, deploys through inventories/vast.py (the hosts take the fleet's Ollama release from
VAST_DATA_FILE), runs the host checks and prints the tunnel lines; `make status` reads health
and tokens over SSH; `make stop` kills every process of both hosts; `make start` boots them and
the services come back through /root/onstart.sh, with no deploy; `make down YES=1` destroys them.
The tests run in this order and share the fleet.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from roles.services import ONSTART_COMMAND
from sandbox import Fleet, Sandbox
from sandbox.rootfs import build_rootfs, default_rootfs
from sandbox.system import find_processes
from sandbox.vast_hooks import SandboxHooks
from tests.deployed import REPO, require_sandbox
from tests.fleet.conftest import load_offers
from vast_double import Market, VastDouble

pytestmark = pytest.mark.sandbox
API_KEY = "vast-fleet-test-key"
COUNT = 2
MAKE_TIMEOUT = 1500


@dataclass
class VastFleet:
    """The double, the hosts behind its instances and the environment `make` runs with."""

    double: VastDouble
    hooks: SandboxHooks
    env: dict[str, str]
    user_key: Path

    def make(self, *args: str) -> subprocess.CompletedProcess[str]:
        # -o: the venv counts as up to date, so a test never reinstalls it
        return subprocess.run(
            ["make", "--no-print-directory", "-o", ".venv/.installed", *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=MAKE_TIMEOUT,
            stdin=subprocess.DEVNULL, check=False,
        )

    def rows(self) -> list[dict[str, Any]]:
        return self.double.market.listing()

    def boxes(self) -> list[Sandbox]:
        return [self.hooks.host(row) for row in self.rows()]

    def ssh(self, row: dict[str, Any], command: str) -> subprocess.CompletedProcess[str]:
        """Run a command on an instance as the user would: their key, the row's endpoint."""
        argv = ["ssh", "-i", str(self.user_key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.env['VAST_KNOWN_HOSTS']}", "-o", "LogLevel=ERROR",
                "-p", str(row["ssh_port"]), f"root@{row['ssh_host']}", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                              stdin=subprocess.DEVNULL)


def output(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def vast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VastFleet]:
    require_sandbox("zstd")
    build_rootfs()
    home = tmp_path_factory.mktemp("home")
    user_key = home / "id_vast"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(user_key)],
                   check=True)
    fleet = Fleet(tmp_path_factory.mktemp("fleet"), rootfs=default_rootfs(),
                  data_root=tmp_path_factory.mktemp("layers"), base_port=0)
    hooks = SandboxHooks(fleet)
    public = user_key.with_name("id_vast.pub").read_text().strip()
    market = Market(offers=load_offers(), ssh_keys=[public], hooks=hooks)
    env = {
        "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "HOME": str(home),
        "VAST_API_KEY": API_KEY, "VAST_SSH_KEY": str(user_key),
        "VAST_KNOWN_HOSTS": str(home / "known_hosts"), "VAST_DATA_FILE": str(hooks.data_file),
        "SELFHOST_SECRETS_DIR": str(tmp_path_factory.mktemp("secrets")),
    }
    try:
        with VastDouble(market, api_key=API_KEY) as double:
            yield VastFleet(double, hooks, {**env, "VAST_URL": double.url}, user_key)
    finally:
        fleet.destroy()


def test_make_up_rents_waits_deploys_checks_and_prints_the_tunnels(vast: VastFleet) -> None:
    done = vast.make("up", f"COUNT={COUNT}", "YES=1")
    text = output(done)
    assert done.returncode == 0, text[-6000:]
    rows = vast.rows()
    assert [(r["label"], r["actual_status"]) for r in rows] == [("llm-selfhost", "running")] * 2
    for row, box in zip(rows, vast.boxes(), strict=True):
        assert f"Rented instance {row['id']} from offer {row['bundle_id']}." in text
        assert f"instance {row['id']}: ready (running, SSH answers)" in text
        assert box.is_running() and row["ssh_port"] == box.ssh_port
    assert re.search(r"^\d+ passed", done.stdout, re.M), text[-3000:]  # the host checks
    for row in rows:
        # vast wrote the instance's onstart there; the deploy found its line and added none
        onstart = vast.ssh(row, "cat /root/onstart.sh").stdout
        assert onstart.splitlines() == [ONSTART_COMMAND]
    for offset, row in enumerate(rows):
        local = 8001 + offset
        assert f"## vast-{row['id']}\n" in done.stdout
        assert re.search(rf"^ssh -N -L {local}:127\.0\.0\.1:8000 -p {row['ssh_port']} .*"
                         rf" root@127\.0\.0\.1$", done.stdout, re.M), done.stdout[-3000:]
        assert f"export ANTHROPIC_BASE_URL=http://127.0.0.1:{local}" in done.stdout


def status(vast: VastFleet) -> dict[str, Any]:
    done = vast.make("status", "JSON=1")
    assert done.returncode == 0, output(done)[-3000:]
    return json.loads(done.stdout[done.stdout.index("{"):])  # type: ignore[no-any-return]


def test_make_status_shows_health_and_tokens(vast: VastFleet) -> None:
    first = vast.rows()[0]
    before = {r["id"]: r for r in status(vast)["instances"]}[first["id"]]
    key = (Path(vast.env["SELFHOST_SECRETS_DIR"]) / "proxy_api_key").read_text().strip()
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "Say hi."}]})
    asked = vast.ssh(first, "curl -sS --max-time 60 http://127.0.0.1:8000/v1/messages"
                            f" -H 'x-api-key: {key}' -H 'content-type: application/json'"
                            f" -d {shlex.quote(body)}")
    assert json.loads(asked.stdout)["type"] == "message", asked.stdout + asked.stderr

    after = status(vast)
    rows = {r["id"]: r for r in after["instances"]}
    assert [rows[r["id"]]["state"] for r in vast.rows()] == ["running", "running"]
    assert {r["health"] for r in rows.values()} <= {"healthy", "degraded"}, rows
    # the host checks sent requests too; this one adds one, and its tokens
    assert rows[first["id"]]["requests"] == before["requests"] + 1
    assert rows[first["id"]]["output_tokens"] > before["output_tokens"]
    assert after["totals"]["anthropic_cost"] > 0
    assert after["totals"]["tokens_by_class"]["sonnet/output"] > 0

    table = vast.make("status")
    assert table.returncode == 0, output(table)[-3000:]
    assert f"{first['id']} | 1x RTX 4090 | running |" in table.stdout
    assert "The same tokens on Anthropic's API: $" in table.stdout


def test_make_stop_kills_every_process_and_keeps_the_disks(vast: VastFleet) -> None:
    done = vast.make("stop")
    assert done.returncode == 0, output(done)[-3000:]
    assert "the disks stay and are still billed" in done.stdout
    assert [r["actual_status"] for r in vast.rows()] == ["stopped", "stopped"]
    for box in vast.boxes():
        assert not box.is_running()
        assert find_processes("slirp4netns", str(box.slirp_socket)) == []
        assert (box.data_dir / "upper" / "opt" / "proxy_app").is_dir()  # the disk stays


def test_make_start_brings_the_services_back_without_a_deploy(vast: VastFleet) -> None:
    done = vast.make("start")
    text = output(done)
    assert done.returncode == 0, text[-6000:]
    assert "Deploy Ollama" not in text and "pyinfra" not in done.stdout  # no deploy ran
    assert re.search(r"^\d+ passed", done.stdout, re.M), text[-3000:]  # the host checks
    for row in vast.rows():
        assert f"vast-{row['id']}: proxy_app healthy" in done.stdout
    # Fresh processes: proxy_app's counters started again. The request sent to the first host
    # before the stop is forgotten; both hosts count the same host checks' requests only.
    again = {r["id"]: r for r in status(vast)["instances"]}
    first, second = (again[r["id"]] for r in vast.rows())
    assert (first["state"], second["state"]) == ("running", "running")
    assert first["requests"] == second["requests"] > 0


def test_make_down_destroys_them_and_leaves_no_sandbox_process(vast: VastFleet) -> None:
    boxes = vast.boxes()
    done = vast.make("down", "YES=1")
    assert done.returncode == 0, output(done)[-3000:]
    assert "Billing for these 2 instance(s) has stopped" in done.stdout
    assert vast.rows() == []
    for box in boxes:
        assert find_processes("unshare", str(box.merged)) == []
        assert find_processes("slirp4netns", str(box.slirp_socket)) == []
        assert not box.data_dir.exists() and not box.state_dir.exists()
    assert find_processes("sandbox.release", str(vast.hooks.fleet.root)) == []
    assert vast.hooks.fleet.names() == []
