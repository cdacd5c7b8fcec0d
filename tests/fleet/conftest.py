"""The fleet commands against the vast.ai double, through the real `vastai` SDK.

`Recorder` is a `fleet.steps.Steps` whose host steps (SSH probe, deploy, checks, tunnel lines,
/health and /metrics) record their arguments instead of reaching hosts, and whose clock only
moves when the command sleeps: waiting loops run without waiting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from vastai import VastAI

from fleet.probe import HostReport
from fleet.steps import Steps
from fleet.vast import VastProvider, connect
from vast_double import Market, VastDouble
from vast_double.market import offers_from

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vast"
API_KEY = "fleet-test-key"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetTestKeyFleetTestKeyFleetTestKey0 me@laptop"
T0 = 1_790_000_000.0  # the double's wall clock at the start of every test


def load_offers() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((FIXTURES / "offers.json").read_text())["offers"]
    return offers_from(rows)


def load_instances(name: str = "instances_mixed") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((FIXTURES / f"{name}.json").read_text())["instances"]
    return rows


class Clock:
    """Seconds that move only when told (or when a command sleeps)."""

    def __init__(self, start: float) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Recorder(Steps):
    lines: list[str] = field(default_factory=list)
    answers: list[bool] = field(default_factory=list)  # replies to confirm(), in order
    questions: list[str] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    reports: dict[str, HostReport] = field(default_factory=dict)  # by ssh_hostname
    ssh_up: bool = True
    clock: Clock = field(default_factory=lambda: Clock(0.0))

    def __post_init__(self) -> None:
        self.say = self.lines.append
        self.confirm = self._confirm
        self.monotonic = self.clock
        self.sleep = self.clock.advance
        self.ssh_ready = lambda host, port: self.ssh_up
        self.deploy = lambda hosts, env: self.calls.append(("deploy", (list(hosts), dict(env))))
        self.check = lambda hosts, env: self.calls.append(("check", (list(hosts), dict(env))))
        self.tunnel = self._tunnel
        self.read_host = self._read_host

    def _confirm(self, question: str) -> bool:
        self.questions.append(question)
        return self.answers.pop(0) if self.answers else False

    def _tunnel(self, hosts: Sequence[str], env: Mapping[str, str]) -> str:
        self.calls.append(("tunnel", (list(hosts), dict(env))))
        return "\n".join(f"ssh -N -L 8001:127.0.0.1:8000 {h}" for h in hosts)

    def _read_host(self, data: Mapping[str, Any]) -> HostReport:
        self.calls.append(("read_host", dict(data)))
        return self.reports.get(str(data["ssh_hostname"]), HostReport(health="healthy"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def called(self, name: str) -> list[Any]:
        return [args for step, args in self.calls if step == name]


@pytest.fixture
def wall() -> Clock:
    return Clock(T0)


@pytest.fixture
def market(wall: Clock) -> Market:
    return Market(offers=load_offers(), ssh_keys=[PUBLIC_KEY], clock=wall)


@pytest.fixture
def vast(market: Market) -> Iterator[VastDouble]:
    with VastDouble(market, api_key=API_KEY) as double:
        yield double


@pytest.fixture
def env(vast: VastDouble, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519.pub").write_text(PUBLIC_KEY + "\n")
    return {
        "HOME": str(home),
        "VAST_API_KEY": API_KEY,
        "VAST_URL": vast.url,
        "VAST_KNOWN_HOSTS": str(tmp_path / "known_hosts"),
    }


@pytest.fixture
def sdk(env: dict[str, str]) -> VastAI:
    return connect(env)


@pytest.fixture
def steps(wall: Clock) -> Recorder:
    recorder = Recorder(poll_seconds=10.0)
    recorder.now = wall
    return recorder


@pytest.fixture
def provider(sdk: VastAI) -> VastProvider:
    return VastProvider(sdk)
