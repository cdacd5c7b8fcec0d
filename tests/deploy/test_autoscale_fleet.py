"""`python -m fleet.autoscale` end to end: the vast.ai double's rentals are real sandbox hosts.

The autoscaler runs as the user runs it (its own process, MIN_HOSTS=0, MAX_HOSTS=2, short idle
and pressure times), with the test's own fleet directory, SSH key, known_hosts and secrets. In
order, sharing the fleet:

1. no host: a request through the official anthropic SDK gets the gateway's 529 + retry-after
   and is retried until the autoscaler has rented, deployed and joined a host: answered;
2. a load ramp (slow answers, one request per host at a time) queues requests in the gateway:
   a second host is rented, deployed and joins the running gateway; no request fails;
3. the load stops: after the idle time the extra host is stopped, then the last one;
4. the next request (the pinned Claude Code CLI, `claude -p`, when `make node` installed it;
   else the SDK) wakes a stopped host, which needs no deploy, and is answered.

Cold starts are printed (run with -s) and, with RECORD_RESULTS=1, written to
bench/results/autoscale.json (the numbers docs/autoscaling.md renders).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from devkit.ports import free_port
from fleet.autoscale import state as state_file
from sandbox import Fleet
from sandbox.rootfs import build_rootfs, default_rootfs
from sandbox.vast_hooks import SandboxHooks
from tests.claude_code.cli import claude_available, run_claude
from tests.deployed import REPO, require_sandbox
from tests.fleet.conftest import load_offers
from vast_double import Market, VastDouble

pytestmark = pytest.mark.sandbox
API_KEY = "vast-autoscale-test-key"
IDLE_MINUTES = 0.5
RESULTS = REPO / "bench" / "results" / "autoscale.json"
MEASURED: dict[str, Any] = {}


@dataclass
class Scaled:
    """The double, its hosts, the autoscaler process and how to reach its gateway."""

    double: VastDouble
    hooks: SandboxHooks
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path
    state: Path
    port: int
    key: str = ""
    user_key: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rows(self) -> list[dict[str, Any]]:
        return self.double.market.listing()

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def decisions(self, action: str) -> list[dict[str, Any]]:
        return [d for d in state_file.load(self.state).decisions if d["action"] == action]

    def wait_for(self, what: str, check: Any, timeout: float) -> float:
        started = time.monotonic()
        while not check():
            assert self.proc.poll() is None, "the autoscaler exited:\n" + "\n".join(self.lines())
            if time.monotonic() - started > timeout:
                tail = "\n".join(self.lines()[-60:])
                raise AssertionError(f"no {what} in {timeout:g} s:\n{tail}")
            time.sleep(0.5)
        return time.monotonic() - started

    def ssh(self, row: dict[str, Any], command: str) -> subprocess.CompletedProcess[str]:
        argv = [
            "ssh",
            "-i",
            str(self.user_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={self.env['VAST_KNOWN_HOSTS']}",
            "-o",
            "LogLevel=ERROR",
            "-p",
            str(row["ssh_port"]),
            f"root@{row['ssh_host']}",
            command,
        ]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
        )

    def client(self) -> anthropic.Anthropic:
        # The SDK honours retry-after; enough retries to outlast a rent, a deploy and a join.
        return anthropic.Anthropic(
            base_url=self.url, auth_token=self.key, api_key=None, max_retries=100, timeout=60
        )


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaled]:
    require_sandbox("zstd")
    build_rootfs()
    home = tmp_path_factory.mktemp("home")
    user_key = home / "id_vast"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(user_key)], check=True)
    fleet = Fleet(
        tmp_path_factory.mktemp("fleet"),
        rootfs=default_rootfs(),
        data_root=tmp_path_factory.mktemp("layers"),
        base_port=0,
    )
    hooks = SandboxHooks(fleet)
    public = user_key.with_name("id_vast.pub").read_text().strip()
    market = Market(offers=load_offers(), ssh_keys=[public], hooks=hooks)
    secrets = tmp_path_factory.mktemp("secrets")
    work = tmp_path_factory.mktemp("autoscale")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "VAST_API_KEY": API_KEY,
        "VAST_SSH_KEY": str(user_key),
        "VAST_KNOWN_HOSTS": str(home / "known_hosts"),
        "VAST_DATA_FILE": str(hooks.data_file),
        "SELFHOST_SECRETS_DIR": str(secrets),
        "PYTHONUNBUFFERED": "1",
    }
    log = work / "autoscale.log"
    try:
        with VastDouble(market, api_key=API_KEY) as double, log.open("wb") as out:
            env["VAST_URL"] = double.url
            argv = [
                sys.executable,
                "-m",
                "fleet.autoscale",
                "--min-hosts",
                "0",
                "--max-hosts",
                "2",
                "--idle-minutes",
                str(IDLE_MINUTES),
                "--wait-seconds",
                "0.2",
                "--sustain-seconds",
                "3",
                "--interval",
                "1",
                "--host-maxconn",
                "1",
                "--port",
                str(port),
                "--stats-port",
                str(free_port()),
                "--metrics-port",
                str(free_port()),
                "--state",
                str(work / "state.json"),
            ]
            proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            scaled = Scaled(
                double, hooks, env, proc, log, work / "state.json", port, user_key=user_key
            )
            try:
                scaled.wait_for("gateway", lambda: "Gateway ready" in log.read_text(), 60)
                scaled.key = (secrets / "proxy_api_key").read_text().strip()
                yield scaled
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
                print("\n".join(line for line in scaled.lines() if line[:2] == "20"))
                print("\n".join(scaled.lines()[-15:]))
    finally:
        fleet.destroy()
        if os.environ.get("RECORD_RESULTS") and MEASURED:
            RESULTS.write_text(json.dumps(MEASURED, indent=2) + "\n")


def test_autoscale_wakes_from_zero_and_the_sdk_is_answered(scaled: Scaled) -> None:
    refused = httpx.post(
        f"{scaled.url}/v1/messages",
        timeout=30,
        headers={"x-api-key": scaled.key, "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert refused.status_code == 529 and refused.headers["retry-after"] == "5"
    started = time.monotonic()
    answer = scaled.client().messages.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    took = time.monotonic() - started
    print(f"{time.strftime('%H:%M:%S')} answered after {took:.1f} s")
    assert answer.content[0].text == "ok"  # type: ignore[union-attr]
    (added,) = scaled.decisions("add")
    assert "no host up and" in added["reason"] and "rented instance" in added["reason"]
    assert [d["reason"] for d in scaled.decisions("join")] == [
        f"vast-{scaled.rows()[0]['id']} is running and answers SSH"
    ]
    MEASURED["rented_to_serving_s"] = round(took, 1)
    print(f"rented -> serving: {took:.1f} s")


@dataclass
class Load:
    url: str
    key: str
    sessions: int = 3
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        session = str(uuid.uuid4())
        headers = {
            "x-api-key": self.key,
            "anthropic-version": "2023-06-01",
            "X-Claude-Code-Session-Id": session,
        }
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self.stop.is_set():
                # a new prompt each turn, as a conversation has: no answer from proxy_app's cache
                turn = f"turn {self.ok + len(self.failures)} of {session}"
                body = {
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 16,
                    "stream": True,
                    "messages": [{"role": "user", "content": turn}],
                }
                with client.stream("POST", "/v1/messages", json=body, headers=headers) as resp:
                    text = resp.read().decode()
                if resp.status_code == 200 and "message_stop" in text:
                    self.ok += 1
                else:
                    self.failures.append(f"{resp.status_code} {text[-300:]}")

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self._run) for _ in range(self.sessions)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def slow_replies(scaled: Scaled, row: dict[str, Any], count: int, delay: float) -> None:
    """Queue `count` answers on the host's Ollama double that each take `delay` seconds."""
    replies = json.dumps({"replies": [{"content": "ok", "first_chunk_delay": delay}] * count})
    done = scaled.ssh(
        row, f"curl -sS -d @- http://127.0.0.1:11434/api/_double/script <<'EOF'\n{replies}\nEOF"
    )
    assert done.returncode == 0, done.stderr


def test_autoscale_load_ramp_rents_a_second_host_that_joins_with_no_failed_request(
    scaled: Scaled,
) -> None:
    (first,) = scaled.rows()
    slow_replies(scaled, first, 400, 1.0)
    with Load(scaled.url, scaled.key) as load:
        took = scaled.wait_for(
            "second host serving", lambda: len(scaled.decisions("join")) == 2, 900
        )
        time.sleep(5)  # requests keep flowing through both
    assert load.failures == []
    rented = [d for d in scaled.decisions("add") if "waited" in d["reason"]]
    assert len(rented) == 1 and "rented instance" in rented[0]["reason"], rented
    assert len(scaled.rows()) == 2
    print(f"queue -> second host serving: {took:.1f} s; {load.ok} streams, 0 failed")
    MEASURED["pressure_to_second_host_serving_s"] = round(took, 1)
    MEASURED["streams_during_join"] = load.ok


def test_autoscale_idle_hosts_are_stopped_one_by_one_down_to_zero(scaled: Scaled) -> None:
    took = scaled.wait_for(
        "both stopped",  # by the provider, and then recorded in the state file
        lambda: (
            [r["intended_status"] for r in scaled.rows()] == ["stopped", "stopped"]
            and len(scaled.decisions("retire")) == 2
        ),
        IDLE_MINUTES * 60 * 2 + 240,
    )
    assert len(scaled.decisions("drain")) == 2 and len(scaled.decisions("retire")) == 2
    assert all("stop it" in d["reason"] for d in scaled.decisions("retire"))
    print(f"idle -> both stopped: {took:.1f} s")


def test_autoscale_a_request_wakes_a_stopped_host_without_a_deploy(scaled: Scaled) -> None:
    deploys = sum("Deploy Ollama" in line for line in scaled.lines())
    started = time.monotonic()
    if claude_available():  # the pinned Claude Code CLI, retrying the gateway's 529 itself
        done = run_claude("say hi", scaled.url, scaled.key, cwd=str(scaled.log.parent), timeout=600)
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
        client = "Claude Code"
    else:
        answer = scaled.client().messages.create(
            model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.content[0].text == "ok"  # type: ignore[union-attr]
        client = "anthropic SDK"
    took = time.monotonic() - started
    woke = scaled.decisions("add")[-1]
    assert "no host up" in woke["reason"] and "; start vast-" in woke["reason"], woke
    assert sum("Deploy Ollama" in line for line in scaled.lines()) == deploys  # no deploy
    assert sum(1 for r in scaled.rows() if r["intended_status"] == "running") == 1
    print(f"stopped -> serving ({client}): {took:.1f} s")
    MEASURED["stopped_to_serving_s"] = round(took, 1)
    MEASURED["stopped_to_serving_client"] = client
