"""The autoscaler's loop against the vast.ai double (through the real SDK) and a recorded gateway.

The gateway here is a `FakeGateway` whose numbers the test sets (the live HAProxy side is
tests/autoscale/test_autoscale_gateway.py); the steps that need hosts (SSH probe, deploy) record
their arguments (tests/fleet/conftest.py Recorder). Time moves only when the test says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleet.admin import HostLoad, Load
from fleet.autoscale import state as state_file
from fleet.autoscale.loop import Autoscaler
from fleet.autoscale.policy import Settings
from fleet.provider import Instance, Offer, Rental, Wanted
from fleet.vast import VastProvider
from roles.services import ONSTART_COMMAND
from tests.fleet.conftest import Clock, Recorder
from vast_double import VastDouble

LABEL = "llm-selfhost"
WANTED = Wanted(min_vram_gb=7.6)


@dataclass
class FakeGateway:
    """The gateway's membership and numbers, set by the test."""

    joined: dict[str, bool] = field(default_factory=dict)  # name -> draining
    in_flight: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    waiting: int = 0
    calls: list[tuple[str, str]] = field(default_factory=list)

    def members(self) -> Mapping[str, bool]:
        return dict(self.joined)

    def join(self, name: str, data: Mapping[str, Any]) -> None:
        self.calls.append(("join", name))
        self.joined[name] = False

    def drain(self, name: str) -> None:
        self.calls.append(("drain", name))
        self.joined[name] = True

    def leave(self, name: str) -> None:
        self.calls.append(("leave", name))
        self.joined.pop(name)

    def load(self) -> Load:
        hosts = {
            name: HostLoad(
                "MAINT" if draining else "UP",
                self.in_flight.get(name, 0),
                0,
                self.requests.get(name, 0),
            )
            for name, draining in self.joined.items()
        }
        return Load(hosts, self.waiting, self.refused)


@dataclass
class Harness:
    scaler: Autoscaler
    gateway: FakeGateway
    vast: VastDouble
    steps: Recorder
    wall: Clock
    lines: list[str]

    def tick(self, seconds: float = 5.0) -> str:
        self.wall.advance(seconds)
        decision = self.scaler.tick()
        return f"{decision.action}: {decision.reason}"

    def creates(self) -> int:
        return sum(1 for _, path, _, _, _ in self.vast.requests("PUT") if "/asks/" in path)

    def until(self, action: str, ticks: int = 10) -> str:
        for _ in range(ticks):
            said = self.tick()
            if said.startswith(action):
                return said
        raise AssertionError(f"no {action} in {ticks} looks:\n" + "\n".join(self.lines))


def make(
    provider: VastProvider,
    vast: VastDouble,
    steps: Recorder,
    env: dict[str, str],
    wall: Clock,
    path: Path,
    gateway: FakeGateway | None = None,
    **settings: Any,
) -> Harness:
    gateway = gateway or FakeGateway()
    lines: list[str] = []
    bid = settings.get("bid") if settings.get("interruptible") else None
    wanted = Wanted(min_vram_gb=7.6, interruptible=bool(settings.get("interruptible")), bid=bid)
    scaler = Autoscaler(
        Settings(**settings),
        provider,
        gateway,
        steps,
        path,
        env,
        Rental(LABEL, "vastai/base-image:cuda-12.4.1-auto", 40, ONSTART_COMMAND, bid),
        wanted,
        log=lines.append,
    )
    return Harness(scaler, gateway, vast, steps, wall, lines)


@pytest.fixture
def harness(
    provider: VastProvider,
    vast: VastDouble,
    steps: Recorder,
    env: dict[str, str],
    wall: Clock,
    tmp_path: Path,
) -> Harness:
    return make(provider, vast, steps, env, wall, tmp_path / "state.json", idle_minutes=10)


def test_autoscale_wakes_from_zero_rents_deploys_joins(harness: Harness) -> None:
    assert harness.tick().startswith("hold: 0 serving")
    harness.gateway.refused = 2  # two requests got the gateway's 529
    said = harness.tick()
    assert said.startswith("add: no host up and 2 request(s) refused, 0 waiting; rent one:")
    assert "rented instance 7000001, offer 8002 (1x RTX 4090" in said
    assert harness.creates() == 1
    said = harness.until("join")
    assert said == "join: vast-7000001 is running and answers SSH"
    assert harness.steps.called("deploy") == [(["vast-7000001"], {"VAST_LABEL": LABEL})]
    assert harness.gateway.calls == [("join", "vast-7000001")]
    assert harness.tick().startswith("hold: 1 serving, 0 waiting")
    assert harness.creates() == 1
    line = next(line for line in harness.lines if " add: " in line)
    assert "| 0 serving, 0 waiting, fleet $0.000/h -> $0.308/h, $0.00 today" in line


def test_autoscale_idle_drains_then_stops_then_a_request_starts_it_again(
    harness: Harness, vast: VastDouble
) -> None:
    harness.gateway.refused = 1
    harness.tick()
    harness.until("join")
    harness.gateway.in_flight["vast-7000001"] = 1
    harness.tick(60)
    harness.gateway.in_flight["vast-7000001"] = 0
    harness.tick(599)
    assert harness.tick(1).startswith("drain: vast-7000001 had no request for 10.0 min")
    said = harness.tick()
    assert said == "retire: vast-7000001 drained (its streams ended); stop it"
    assert harness.gateway.joined == {}
    assert vast.market.instances[0]["intended_status"] == "stopped"
    harness.gateway.refused = 2
    said = harness.tick()
    assert said == "add: no host up and 1 request(s) refused, 0 waiting; start vast-7000001"
    assert harness.until("join") == "join: vast-7000001 is running and answers SSH"
    assert harness.creates() == 1  # started, never rented again
    assert len(harness.steps.called("deploy")) == 1  # its services came back by themselves


def test_autoscale_sustained_waits_rent_a_second_host(harness: Harness) -> None:
    harness.gateway.refused = 1
    harness.tick()
    harness.until("join")
    harness.gateway.in_flight["vast-7000001"] = 4
    harness.gateway.waiting = 6
    served = harness.gateway.requests

    def busy_tick() -> str:  # a look every 5 s, 5 requests served meanwhile: 1/s
        served["vast-7000001"] = served.get("vast-7000001", 0) + 5
        return harness.tick()

    assert busy_tick().startswith("hold: 1 serving, 6 waiting")
    said = next(s for s in (busy_tick() for _ in range(12)) if s.startswith("add"))
    assert said.startswith("add: requests waited ~6.0 s (> 2 s; now 6 waiting) for 3")
    assert "s with 1 host(s); rent one: rented instance 7000002, offer 8001" in said
    assert harness.until("join") == "join: vast-7000002 is running and answers SSH"
    assert harness.creates() == 2


def test_autoscale_budget_refuses_a_rent_with_a_sentence(
    provider: VastProvider,
    vast: VastDouble,
    steps: Recorder,
    env: dict[str, str],
    wall: Clock,
    tmp_path: Path,
) -> None:
    h = make(provider, vast, steps, env, wall, tmp_path / "s.json", budget_per_hour=0.25)
    h.gateway.refused = 1
    said = h.tick()
    assert said == (
        "refuse: no host up and 1 request(s) refused, 0 waiting; rent one; Not renting offer"
        " 8002 (1x RTX 4090, 25 GB, $0.308/h, Canada, CA, reliability 0.995): the fleet would"
        " cost $0.308/h with it ($0.000/h now + $0.308/h), over BUDGET_PER_HOUR=$0.25/h."
    )
    assert h.creates() == 0
    saved = state_file.load(tmp_path / "s.json")
    assert saved.counters == {"refused_budget": 1}
    assert saved.decisions[-1]["action"] == "refuse"


class KilledAfterCreate(VastProvider):
    """The autoscaler killed right after vast.ai created the instance, before it heard back."""

    def create(self, offer: Offer, rental: Rental) -> int:
        super().create(offer, rental)
        raise KeyboardInterrupt


def test_autoscale_killed_mid_rent_leaves_no_orphan_and_rents_nothing_twice(
    provider: VastProvider,
    vast: VastDouble,
    steps: Recorder,
    env: dict[str, str],
    wall: Clock,
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    killed = make(KilledAfterCreate(provider.sdk), vast, steps, env, wall, path)
    killed.gateway.refused = 1
    with pytest.raises(KeyboardInterrupt):
        killed.tick()
    assert state_file.load(path).intent == {"offer": 8002, "known": [], "at": wall()}
    again = make(provider, vast, steps, env, wall, path, gateway=killed.gateway)
    said = again.tick()
    assert again.lines[0].endswith(
        "settle: the rent of offer 8002 interrupted at 2026-09-21T14:13:25Z: adopted instance"
        " 7000001"
    )
    assert said.startswith("hold: 0 serving, 0 waiting, booting vast-7000001")
    assert again.until("join") == "join: vast-7000001 is running and answers SSH"
    assert again.creates() == 1
    assert state_file.load(path).intent is None
    assert [row["id"] for row in vast.market.instances] == [7000001]


def test_autoscale_replaces_an_outbid_host_within_the_budget(
    provider: VastProvider,
    vast: VastDouble,
    steps: Recorder,
    env: dict[str, str],
    wall: Clock,
    tmp_path: Path,
) -> None:
    h = make(provider, vast, steps, env, wall, tmp_path / "s.json", interruptible=True, bid=0.21)
    h.gateway.refused = 1
    h.tick()
    h.until("join")
    (first,) = vast.market.instances
    assert first["is_bid"] and first["dph_base"] == 0.21
    vast.market.outbid(first["id"])
    said = h.tick()
    assert said.startswith(
        "replace: vast-7000001 was outbid (stopped by the provider); destroyed it: rented"
    )
    assert "rented instance 7000002" in said
    assert h.gateway.calls[-1] == ("leave", "vast-7000001")
    assert [row["id"] for row in vast.market.instances] == [7000002]
    assert h.until("join") == "join: vast-7000002 is running and answers SSH"


def test_autoscale_state_file_is_what_status_reads(harness: Harness, tmp_path: Path) -> None:
    harness.gateway.refused = 1
    harness.tick()
    saved = state_file.load(tmp_path / "state.json")
    assert saved.settings["idle_minutes"] == 10
    assert saved.fleet["live"] == 0 and saved.fleet["dph"] == pytest.approx(0.308, abs=1e-3)
    assert saved.counters == {"rented": 1}
    assert isinstance(saved.decisions[-1]["numbers"], str)


def test_autoscale_instance_fields_for_an_outbid_row() -> None:
    from fleet.vast import instance_of

    row = {
        "id": 1,
        "is_bid": True,
        "intended_status": "running",
        "cur_state": "stopped",
        "actual_status": "stopped",
        "dph_total": 0.2,
        "storage_total_cost": 0.01,
    }
    instance: Instance = instance_of(row)
    assert (instance.interrupted, instance.stopped, instance.running) == (True, False, False)
    assert instance.billed_dph == 0.01


def test_autoscale_status_shows_decisions_and_the_alerts_firing_now(
    provider: VastProvider,
    vast: VastDouble,
    steps: Recorder,
    env: dict[str, str],
    wall: Clock,
    tmp_path: Path,
) -> None:
    from fleet.status import status

    path = tmp_path / "s.json"
    h = make(provider, vast, steps, env, wall, path, budget_per_hour=0.32, boot_minutes=60)
    h.gateway.refused = 1
    h.tick()
    h.tick()
    steps.lines.clear()
    prices = {"date": "d", "source": "s", "sonnet": {"input": 3.0, "output": 15.0}}
    data = status(provider, LABEL, steps, env, prices, autoscale_state=path)
    report = data["autoscaler"]
    assert report["alerts"] == ["SpendNearBudget: $0.308/h of BUDGET_PER_HOUR=$0.32"]
    text = steps.text
    assert "Autoscaler (" in text and "0 serving of 1 live, 0 waiting; $0.308/h" in text
    assert "add: no host up and 1 request(s) refused, 0 waiting; rent one: rented" in text
    assert "Alerts firing now: \n  SpendNearBudget: $0.308/h of BUDGET_PER_HOUR=$0.32" in text
    wall.advance(20 * 60)  # the autoscaler stopped looking; the host never served
    report = status(provider, LABEL, steps, env, prices, autoscale_state=path)["autoscaler"]
    assert (
        "AutoscalerUnableToAct: no successful look for 20 min (0 failed actions)"
        in report["alerts"]
    )


def test_autoscale_metrics_carry_every_name_the_alert_rules_read(
    harness: Harness, tmp_path: Path
) -> None:
    import re

    from fleet.autoscale import metrics

    harness.gateway.refused = 1
    harness.tick()  # rents
    harness.tick()  # first sees it booting
    harness.tick()  # five seconds later
    text = metrics.render(harness.scaler.state, harness.scaler.settings)
    rules = (Path(__file__).resolve().parents[2] / "monitoring" / "rules.yml").read_text()
    for name in set(re.findall(r"llm_autoscaler_\w+", rules)):
        assert re.search(rf"^{name}(\{{[^}}]*\}})? ", text, re.M), name
    assert 'llm_autoscaler_hosts{state="booting"} 1' in text
    assert 'llm_autoscaler_host_booting_seconds{host="vast-7000001"} 5' in text
    metrics.write(tmp_path / "out", text, {"vast-7000001": 40123})
    assert '"127.0.0.1:40123"' in (tmp_path / "out" / "targets.json").read_text()
