"""`python -m fleet.gateway run` against the tests' two-host sandbox fleet (tests/deployed.py).

The gateway opens its own ssh tunnels to sandbox-1 (systemd) and sandbox-2 (a vast.ai-shaped
container) and runs HAProxy in front of them. Faults are injected the way they happen for real:
proxy_app stopped on a host (`systemctl` / `supervisorctl stop proxy`), the tunnel's ssh killed,
the whole host restarted (`python -m sandbox restart`). During each, background sessions keep
sending requests; the test prints how many of them failed and how long HAProxy took to notice
(run with -s), and asserts that requests started after the detection all succeed. Every test
leaves both hosts UP.
"""

from __future__ import annotations

import json
import os
import shlex
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

import httpx
import pytest

from devkit.ports import free_port
from fleet.claude_code import parse_exports
from fleet.haproxy import host_status, read_stats
from tests.claude_code.cli import run_claude
from tests.deployed import FLEET_HOSTS, INVENTORY, KIND, REPO, DeployedFleet

pytestmark = [pytest.mark.sandbox]
SESSION_HEADER = "X-Claude-Code-Session-Id"
VICTIM = FLEET_HOSTS[0]
READY_WITHIN = 120.0


@dataclass
class LiveGateway:
    proc: subprocess.Popen[bytes]
    port: int
    stats_port: int
    env: dict[str, str]
    log: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def status(self) -> dict[str, dict[str, Any]]:
        return {h["name"]: h for h in host_status(read_stats(self.stats_port))}

    def wait_state(self, name: str, state: str, timeout: float = 120) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.status()[name].get("state") == state:
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"{name} not {state} after {timeout:g} s: {self.status()[name]}")

    def ask(self, session: str | None, text: str = "hi", **extra: Any) -> httpx.Response:
        headers = {"x-api-key": self.env["ANTHROPIC_AUTH_TOKEN"]}
        if session is not None:
            headers[SESSION_HEADER] = session
        body = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 32,
            "messages": [{"role": "user", "content": text}],
            **extra,
        }
        return self.client.post("/v1/messages", json=body, headers=headers)

    def requests(self) -> dict[str, int]:
        return {name: h["requests"] for name, h in self.status().items()}

    def home_of(self, session: str) -> str:
        """The host that serves ``session`` (one request, seen in HAProxy's counters)."""
        before = self.requests()
        assert self.ask(session).status_code == 200
        after = self.requests()
        moved = [name for name in after if after[name] > before[name]]
        assert len(moved) == 1, (before, after)
        return moved[0]

    def tunnel_pid(self, ssh_port: int) -> int | None:
        """The pid of the gateway's ssh tunnel to the host whose sshd is on ``ssh_port``."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == self.proc.pid and argv[0] == b"ssh" and str(ssh_port).encode() in argv:
                return int(entry.name)
        return None


@pytest.fixture(scope="module")
def gateway(
    deployed_fleet: DeployedFleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveGateway]:
    """`python -m fleet.gateway run` on free ports, until it prints `Gateway ready on …`."""
    port, stats_port = free_port(), free_port()
    logs = tmp_path_factory.mktemp("gateway")
    out, err = logs / "stdout", logs / "stderr"
    argv = [
        sys.executable,
        "-m",
        "fleet.gateway",
        "run",
        "--inventory",
        str(INVENTORY),
        "--port",
        str(port),
        "--stats-port",
        str(stats_port),
    ]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**os.environ, **deployed_fleet.env},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + READY_WITHIN
        while f"Gateway ready on http://127.0.0.1:{port}" not in out.read_text():
            assert proc.poll() is None, f"the gateway exited: {err.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no ready line: {err.read_text()[-2000:]}"
            time.sleep(0.2)
        env = parse_exports(out.read_text())
        assert env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
        gw = LiveGateway(proc, port, stats_port, env, err)
        for name in FLEET_HOSTS:
            gw.wait_state(name, "UP")
        yield gw
        gw.client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    print(err.read_text()[-3000:])


def test_the_gateway_stops_its_tunnels_and_haproxy_on_sigterm(
    deployed_fleet: DeployedFleet, tmp_path: Path
) -> None:
    port, stats_port = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "fleet.gateway",
        "run",
        "--inventory",
        str(INVENTORY),
        "--port",
        str(port),
        "--stats-port",
        str(stats_port),
    ]
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env={**os.environ, **deployed_fleet.env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(b"Gateway ready on"):
            break
    children = [
        int(p)
        for task in Path(f"/proc/{proc.pid}/task").iterdir()
        for p in (task / "children").read_text().split()
    ]
    assert len(children) == len(FLEET_HOSTS) + 1  # one ssh per host, and haproxy
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]


def test_sessions_spread_over_both_hosts_and_each_stays_on_one(gateway: LiveGateway) -> None:
    sessions = [str(uuid.uuid4()) for _ in range(10)]
    homes = {s: gateway.home_of(s) for s in sessions}
    assert set(homes.values()) == set(FLEET_HOSTS), homes
    for session in sessions:
        assert gateway.home_of(session) == homes[session]


@dataclass
class Traffic:
    """Sessions sending one request after another in a thread, each outcome timestamped."""

    gateway: LiveGateway
    sessions: list[str]
    outcomes: list[tuple[float, str, str]] = field(default_factory=list)  # time, session, result
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for session in self.sessions:
                started = time.monotonic()
                try:
                    status = str(self.gateway.ask(session).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.outcomes.append((started, session, status))
            time.sleep(0.05)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=120)

    def failures(self, after: float = 0.0) -> list[tuple[float, str, str]]:
        return [o for o in self.outcomes if o[0] >= after and o[2] != "200"]


def _sessions_on_both(gateway: LiveGateway, per_host: int = 2) -> list[str]:
    found: dict[str, list[str]] = {name: [] for name in FLEET_HOSTS}
    while any(len(v) < per_host for v in found.values()):
        session = str(uuid.uuid4())
        home = gateway.home_of(session)
        if len(found[home]) < per_host:
            found[home].append(session)
    return [s for sessions in found.values() for s in sessions]


def _ssh(deployed: DeployedFleet, name: str, command: str) -> str:
    done = deployed.ssh(name, command)
    assert done.returncode == 0, f"{command}: {done.stderr}"
    return done.stdout


def _proxy(deployed: DeployedFleet, name: str, action: str) -> None:
    """Stop or start proxy_app on a host with its service manager (systemd or supervisord)."""
    manager = "systemctl" if KIND[name] == "systemd" else "supervisorctl"
    _ssh(deployed, name, f"{manager} {action} proxy")


def _report(fault: str, traffic: Traffic, detected: float | None, back: float) -> None:
    failures = traffic.failures()
    kinds = sorted({f[2] for f in failures})
    print(
        f"\nFAULT {fault}: {len(traffic.outcomes)} requests, {len(failures)} failed {kinds}; "
        f"DOWN after {'never' if detected is None else f'{detected:.1f} s'}; "
        f"UP again {back:.1f} s after the repair"
    )


@pytest.mark.parametrize("victim", FLEET_HOSTS, ids=[f"{n}-{KIND[n]}" for n in FLEET_HOSTS])
def test_a_stopped_proxy_is_routed_around_and_its_sessions_stay_where_they_moved(
    gateway: LiveGateway, deployed_fleet: DeployedFleet, victim: str
) -> None:
    sessions = _sessions_on_both(gateway)
    homes = {s: gateway.home_of(s) for s in sessions}
    with Traffic(gateway, sessions) as traffic:
        time.sleep(1)
        stopped_at = time.monotonic()
        _proxy(deployed_fleet, victim, "stop")
        detected = gateway.wait_state(victim, "DOWN")
        time.sleep(3)
        _proxy(deployed_fleet, victim, "start")
        back = gateway.wait_state(victim, "UP")
        time.sleep(1)
    _report(f"proxy stopped on {victim} ({KIND[victim]})", traffic, detected, back)
    assert not traffic.failures(after=stopped_at + detected), traffic.failures()
    assert len(traffic.outcomes) > 20
    # The victim's sessions moved to the other host and stay there (their KV cache is there
    # now); the other host's sessions never moved.
    other = next(name for name in FLEET_HOSTS if name != victim)
    for session in sessions:
        assert gateway.home_of(session) == other, (session, homes[session])


def test_a_killed_tunnel_is_reopened(gateway: LiveGateway, deployed_fleet: DeployedFleet) -> None:
    data = {h["name"]: h["data"] for h in deployed_fleet.hosts()}
    ssh_port = int(data[VICTIM]["ssh_port"])
    old = gateway.tunnel_pid(ssh_port)
    assert old is not None
    sessions = _sessions_on_both(gateway)
    with Traffic(gateway, sessions) as traffic:
        time.sleep(1)
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (new := gateway.tunnel_pid(ssh_port)) in (None, old):
            assert time.monotonic() < deadline, "the tunnel was not re-opened"
            time.sleep(0.05)
        reopened = time.monotonic() - killed_at
        went_down = gateway.status()[VICTIM]["state"] != "UP"
        back = gateway.wait_state(VICTIM, "UP")
        time.sleep(1)
    _report("tunnel killed", traffic, reopened if went_down else None, back)
    print(f"tunnel re-opened {reopened:.1f} s after the kill (new ssh pid {new})")
    assert reopened < 5
    assert not traffic.failures(after=killed_at + reopened + back + 1), traffic.failures()


@pytest.mark.parametrize("victim", FLEET_HOSTS, ids=[f"{n}-{KIND[n]}" for n in FLEET_HOSTS])
def test_a_restarted_host_comes_back_into_the_pool(
    gateway: LiveGateway, deployed_fleet: DeployedFleet, victim: str
) -> None:
    sessions = _sessions_on_both(gateway)
    with Traffic(gateway, sessions) as traffic:
        time.sleep(1)
        restarted_at = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "sandbox", "restart", victim],
            cwd=REPO,
            env={**os.environ, **deployed_fleet.env},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        detected = (
            gateway.wait_state(victim, "DOWN", timeout=60)
            if (gateway.status()[victim]["state"] != "DOWN")
            else time.monotonic() - restarted_at
        )
        back = gateway.wait_state(victim, "UP", timeout=180)
        time.sleep(1)
    _report(f"{victim} ({KIND[victim]}) restarted", traffic, detected, back)
    assert not traffic.failures(after=restarted_at + detected), traffic.failures()


@pytest.mark.parametrize("victim", FLEET_HOSTS, ids=[f"{n}-{KIND[n]}" for n in FLEET_HOSTS])
def test_a_stream_in_flight_on_a_stopped_proxy(
    gateway: LiveGateway, deployed_fleet: DeployedFleet, victim: str
) -> None:
    """What a running stream sees when its host's proxy is stopped (TERM, then KILL after the
    manager's timeout): uvicorn lets it finish if it can; otherwise it is cut."""
    session = next(
        s for s in (str(uuid.uuid4()) for _ in range(50)) if gateway.home_of(s) == victim
    )
    _script(deployed_fleet, victim, {"content": "word " * 40, "chunk_delay": 0.1})
    events: list[str] = []
    error: Exception | None = None
    headers = {"x-api-key": gateway.env["ANTHROPIC_AUTH_TOKEN"], SESSION_HEADER: session}
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "stream": True,
        "messages": [{"role": "user", "content": "a long answer"}],
    }
    with gateway.client.stream("POST", "/v1/messages", json=body, headers=headers) as resp:
        try:
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                if events.count("content_block_delta") == 3:
                    threading.Thread(target=_proxy, args=(deployed_fleet, victim, "stop")).start()
        except httpx.HTTPError as exc:
            error = exc
    print(
        f"\nstream during a proxy stop on {victim}: {len(events)} events, "
        f"last {events[-1]!r}, error {error!r}"
    )
    _proxy(deployed_fleet, victim, "start")
    gateway.wait_state(victim, "UP")
    assert events[-1] in ("message_stop", "error") or isinstance(error, httpx.RemoteProtocolError)


def test_no_host_up_is_a_529_envelope(gateway: LiveGateway, deployed_fleet: DeployedFleet) -> None:
    try:
        for name in FLEET_HOSTS:
            _proxy(deployed_fleet, name, "stop")
        for name in FLEET_HOSTS:
            gateway.wait_state(name, "DOWN")
        reply = gateway.ask(str(uuid.uuid4()))
        assert reply.status_code == 529
        assert reply.json()["error"]["type"] == "overloaded_error"
        assert int(reply.headers["retry-after"]) > 0
    finally:
        for name in FLEET_HOSTS:
            _proxy(deployed_fleet, name, "start")
        for name in FLEET_HOSTS:
            gateway.wait_state(name, "UP")


def _script(deployed: DeployedFleet, name: str, *replies: dict[str, Any]) -> int:
    """Queue replies on a host's Ollama double; the number now pending."""
    body = shlex.quote(json.dumps({"replies": list(replies)}))
    out = _ssh(
        deployed,
        name,
        f"curl -sS --max-time 10 -H 'content-type: application/json' "
        f"-d {body} http://127.0.0.1:11434/api/_double/script",
    )
    return int(json.loads(out)["queued"])


def _drain(deployed: DeployedFleet, name: str) -> None:
    """Use up replies left queued on a host's double (one /api/chat call each)."""
    chat = shlex.quote(
        json.dumps(
            {
                "model": "qwen2.5-coder:7b",
                "stream": False,
                "messages": [{"role": "user", "content": "-"}],
            }
        )
    )
    for _ in range(_script(deployed, name)):
        _ssh(
            deployed,
            name,
            f"curl -fsS -o /dev/null --max-time 10 -d {chat} http://127.0.0.1:11434/api/chat",
        )


@pytest.mark.claude_code
@pytest.mark.parametrize("stopped", [None, VICTIM], ids=["both-hosts", "one-host-stopped"])
def test_claude_code_runs_a_write_tool_loop_through_the_gateway(
    gateway: LiveGateway, deployed_fleet: DeployedFleet, tmp_path: Path, stopped: str | None
) -> None:
    up = [name for name in FLEET_HOSTS if name != stopped]
    target = tmp_path / "hello.txt"
    write = {"name": "Write", "arguments": {"file_path": str(target), "content": "via gateway\n"}}
    final = {"content": "I wrote hello.txt."}
    try:
        if stopped:
            _proxy(deployed_fleet, stopped, "stop")
            gateway.wait_state(stopped, "DOWN")
        for name in up:  # whichever host the session hashes to answers the same way
            _drain(deployed_fleet, name)
            _script(deployed_fleet, name, {"content": "", "tool_calls": [write]}, *[final] * 4)
        env = gateway.env
        done = run_claude(
            "create hello.txt",
            env["ANTHROPIC_BASE_URL"],
            env["ANTHROPIC_AUTH_TOKEN"],
            str(tmp_path),
            extra_env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert target.read_text() == "via gateway\n"
        assert "I wrote hello.txt." in done.stdout
        # Every model call of the session reached one host: only its scripted replies were used.
        used = [name for name in up if _script(deployed_fleet, name) < 5]
        assert len(used) == 1, {name: _script(deployed_fleet, name) for name in up}
    finally:
        for name in up:
            _drain(deployed_fleet, name)
        if stopped:
            _proxy(deployed_fleet, stopped, "start")
            gateway.wait_state(stopped, "UP")
