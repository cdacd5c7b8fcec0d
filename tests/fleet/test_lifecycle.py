"""`fleet down`, `stop` and `start` against the vast.ai double: only labelled instances move."""

from __future__ import annotations

import pytest

from fleet.down import down
from fleet.errors import FleetError
from fleet.provider import Wanted
from fleet.start import start
from fleet.stop import stop
from fleet.up import UpOptions, up
from fleet.vast import VastProvider
from tests.fleet.conftest import Recorder, load_instances
from vast_double import VastDouble

LABEL = "llm-selfhost"


@pytest.fixture
def fleet(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> list[int]:
    """Two labelled instances, running and deployed, beside the account's other instances."""
    vast.market.instances.extend(load_instances())  # labels "llm", "old" and none
    options = UpOptions(count=2, wanted=Wanted(min_vram_gb=7.6), yes=True, label=LABEL)
    ready = up(provider, options, steps, env)
    steps.calls.clear()
    steps.lines.clear()
    return [row.id for row in ready]


def others(vast: VastDouble) -> list[tuple[int, str | None, str | None]]:
    return [
        (row["id"], row.get("label"), row.get("actual_status"))
        for row in vast.market.instances
        if row.get("label") != LABEL
    ]


def test_down_destroys_only_labelled_instances(
    provider: VastProvider, vast: VastDouble, steps: Recorder, fleet: list[int]
) -> None:
    before = others(vast)
    steps.answers = [True]
    assert down(provider, LABEL, steps) == fleet
    deleted = [path for _, path, _, _, _ in vast.requests("DELETE")]
    assert deleted == [f"/api/v0/instances/{i}/" for i in fleet]
    assert others(vast) == before  # the "llm", "old" and unlabelled instances are untouched
    assert [r["id"] for r in vast.market.instances if r.get("label") == LABEL] == []
    assert steps.questions == ["Destroy these 2 instance(s) and their disks ($0.00 spent so far)?"]
    assert "Billing for these 2 instance(s) has stopped; their disks are gone." in steps.text


def test_down_answered_no_destroys_nothing(
    provider: VastProvider, vast: VastDouble, steps: Recorder, fleet: list[int]
) -> None:
    steps.answers = [False]
    with pytest.raises(FleetError, match="Nothing destroyed: you answered no."):
        down(provider, LABEL, steps)
    assert vast.requests("DELETE") == []


def test_down_lists_cost_so_far(
    provider: VastProvider, vast: VastDouble, steps: Recorder, fleet: list[int], wall: object
) -> None:
    wall.advance(3600)  # type: ignore[attr-defined]
    down(provider, LABEL, steps, yes=True)
    # 8002: 0.30 $/h GPU + 40 GB x 0.15 $/GB/month / 720 = 0.00833 $/h disk, one hour
    assert f"  {fleet[0]}  1x RTX 4090  running  $0.31 so far" in steps.lines
    assert steps.questions == []


def test_down_with_nothing_labelled(
    provider: VastProvider, vast: VastDouble, steps: Recorder
) -> None:
    vast.market.instances.extend(load_instances())
    assert down(provider, LABEL, steps, yes=True) == []
    assert steps.lines == ["No vast.ai instance is labelled llm-selfhost; nothing to destroy."]
    assert vast.requests("DELETE") == []


def test_stop_keeps_disks_and_says_storage_is_billed(
    provider: VastProvider, vast: VastDouble, steps: Recorder, fleet: list[int]
) -> None:
    before = others(vast)
    assert stop(provider, LABEL, steps) == fleet
    rows = {r["id"]: r for r in vast.market.instances}
    assert [rows[i]["actual_status"] for i in fleet] == ["stopped", "stopped"]
    bodies = [body for _, path, _, _, body in vast.requests("PUT") if path.endswith(f"{fleet[0]}/")]
    assert bodies == [{"state": "stopped"}]
    assert others(vast) == before
    assert "the disks stay and are still billed ($0.0167/h for 2 instance(s))" in steps.text
    assert stop(provider, LABEL, steps) == []  # already stopped


def test_start_brings_them_back_without_a_deploy(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str], fleet: list[int]
) -> None:
    stop(provider, LABEL, steps)
    steps.calls.clear()
    assert start(provider, LABEL, steps, env) == fleet
    rows = {r["id"]: r for r in vast.market.instances}
    assert [rows[i]["actual_status"] for i in fleet] == ["running", "running"]
    hosts = [f"vast-{i}" for i in fleet]
    assert steps.called("deploy") == []
    assert steps.called("check") == [(hosts, {"VAST_LABEL": LABEL})]
    assert [data["instance_id"] for data in steps.called("read_host")] == fleet
    assert f"vast-{fleet[0]}: proxy_app healthy" in steps.text
    assert start(provider, LABEL, steps, env) == []  # nothing stopped any more


def test_up_leaves_stopped_instances_alone(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str], fleet: list[int]
) -> None:
    stop(provider, LABEL, steps)
    options = UpOptions(count=2, wanted=Wanted(min_vram_gb=7.6), yes=True, label=LABEL)
    assert up(provider, options, steps, env) == []
    assert f"Stopped, left alone: {fleet[0]}, {fleet[1]} (`make start` resumes)." in steps.text
    assert [p for _, p, _, _, _ in vast.requests("PUT") if "/asks/" in p][2:] == []
