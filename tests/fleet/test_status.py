"""`fleet status`: cost from the API's price and time fields, tokens from proxy_app's /metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleet import cost
from fleet.hostdata import group_data
from fleet.probe import HostReport, parse_metrics
from fleet.provider import Wanted
from fleet.status import collect, status
from fleet.up import UpOptions, up
from fleet.vast import VastProvider, instance_of
from proxy_app.metrics import Metrics
from tests.fleet.conftest import Clock, Recorder, load_instances
from vast_double import VastDouble

PRICES = {
    "date": "2026-11-30",
    "source": "test table",
    "opus": {"input": 5.0, "output": 25.0},
    "sonnet": {"input": 3.0, "output": 15.0},
    "haiku": {"input": 1.0, "output": 5.0},
}
DISK_DPH = 0.15 * 40 / 720  # offer 8002's storage_cost x 40 GB, per hour


def test_cost_of_a_running_instance() -> None:
    row = {
        "actual_status": "running",
        "dph_total": 0.35,
        "storage_total_cost": 0.05,
        "start_date": 1000.0,
        "uptime_mins": 90.0,
    }
    spent = cost.spent(instance_of({"id": 1, **row}), now=1000.0 + 3 * 3600)
    assert spent.compute == pytest.approx(0.30 * 1.5)  # current run only
    assert spent.storage == pytest.approx(0.05 * 3)  # since the rental began
    assert spent.total == pytest.approx(0.60)


def test_cost_of_a_stopped_instance_is_storage_only() -> None:
    row = {
        "actual_status": "stopped",
        "dph_total": 0.35,
        "storage_cost": 0.18,
        "disk_space": 40.0,
        "start_date": 0.0,
        "uptime_mins": None,
    }
    spent = cost.spent(instance_of({"id": 1, **row}), now=7200.0)
    assert spent.compute == 0
    assert spent.storage == pytest.approx(0.18 * 40 / 720 * 2)


def test_anthropic_cost_by_class_with_other_as_sonnet() -> None:
    tokens = {
        ("opus", "input"): 2_000_000,
        ("haiku", "output"): 1_000_000,
        ("other", "output"): 100_000,
    }
    assert cost.anthropic_cost(tokens, PRICES) == pytest.approx(10.0 + 5.0 + 1.5)
    assert cost.per_million(3.0, 1_500_000) == pytest.approx(2.0)
    assert cost.per_million(3.0, 0) is None


def test_metrics_parsed_from_proxy_apps_own_rendering() -> None:
    metrics = Metrics()
    metrics.observe_request("/v1/messages", 200, 0.2)
    metrics.observe_request("/v1/messages", 200, 0.3)
    metrics.observe_request("/v1/messages", 400, 0.01)
    metrics.observe_request("/health", 200, 0.01)
    metrics.observe_tokens("claude-opus-5-5", 1200, 300)
    metrics.observe_tokens("claude-haiku-4-5", 100, 20)
    text = metrics.render({"hits": 4, "misses": 2})
    report = parse_metrics(text)
    assert (report.requests, report.input_tokens, report.output_tokens) == (3, 1300, 320)
    assert report.cache_hits == 4
    assert report.by_class == {
        ("opus", "input"): 1200,
        ("opus", "output"): 300,
        ("haiku", "input"): 100,
        ("haiku", "output"): 20,
    }


def test_metrics_without_class_counters_count_as_other() -> None:
    text = 'proxy_tokens_total{direction="input"} 10\nproxy_tokens_total{direction="output"} 4\n'
    assert parse_metrics(text).by_class == {("other", "input"): 10, ("other", "output"): 4}


@pytest.fixture
def fleet(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> list[int]:
    vast.market.instances.extend(load_instances())
    ready = up(provider, UpOptions(count=2, wanted=Wanted(min_vram_gb=7.6), yes=True), steps, env)
    steps.lines.clear()
    steps.calls.clear()
    return [row.id for row in ready]


def test_status_rows_and_totals(
    provider: VastProvider,
    vast: VastDouble,
    steps: Recorder,
    env: dict[str, str],
    fleet: list[int],
    wall: Clock,
) -> None:
    first, second = fleet
    steps.reports = {
        f"ssh{first % 10}.vast.example": HostReport(
            health="healthy",
            requests=12,
            input_tokens=3_000_000,
            output_tokens=200_000,
            cache_hits=3,
            by_class={("sonnet", "input"): 3_000_000, ("sonnet", "output"): 200_000},
        ),
    }
    wall.advance(2 * 3600)
    provider.sdk.stop_instance(second)  # the second stops after two hours...
    wall.advance(3600)  # ...and an hour later we look

    data = collect(provider, "llm-selfhost", steps, env, PRICES)

    rows = {r["id"]: r for r in data["instances"]}
    assert list(rows) == fleet  # only the labelled ones
    a, b = rows[first], rows[second]
    assert (a["gpu"], a["state"], a["uptime"], a["health"]) == (
        "1x RTX 4090",
        "running",
        "3h00m",
        "healthy",
    )
    assert a["dph"] == pytest.approx(0.30 + DISK_DPH)
    assert a["cost_compute"] == pytest.approx(0.30 * 3, abs=1e-6)
    assert a["cost_storage"] == pytest.approx(DISK_DPH * 3, abs=1e-6)
    assert (b["state"], b["uptime"], b["health"], b["cost_compute"]) == ("stopped", "-", "-", 0)
    assert b["cost_storage"] == pytest.approx(DISK_DPH * 3, abs=1e-6)
    assert [data["instance_id"] for data in steps.called("read_host")] == [first]  # running only
    totals = data["totals"]
    assert totals["cost"] == pytest.approx(0.9 + 2 * DISK_DPH * 3, abs=1e-5)
    assert totals["per_million_output"] == pytest.approx(totals["cost"] / 0.2, rel=1e-4)
    assert totals["anthropic_cost"] == pytest.approx(3 * 3.0 + 0.2 * 15.0)
    assert (totals["requests"], totals["cache_hits"]) == (12, 3)
    assert totals["dph"] == pytest.approx(0.30 + DISK_DPH + DISK_DPH, abs=1e-6)  # + stopped disk
    assert data["prices"] == {"date": "2026-11-30", "source": "test table"}


def test_status_prints_a_table_or_json(
    provider: VastProvider, steps: Recorder, env: dict[str, str], fleet: list[int]
) -> None:
    status(provider, "llm-selfhost", steps, env, PRICES)
    table = steps.text
    assert table.splitlines()[0].startswith("id | GPU | state | $/h | uptime | cost | health")
    assert f"{fleet[0]} | 1x RTX 4090 | running | 0.308 | 0h00m |" in table
    assert "Anthropic's API: $0.00 (list prices of 2026-11-30, test table)." in table
    steps.lines.clear()
    status(provider, "llm-selfhost", steps, env, PRICES, as_json=True)
    printed: dict[str, Any] = json.loads(steps.text)
    assert [r["id"] for r in printed["instances"]] == fleet


def test_status_without_instances(
    provider: VastProvider, steps: Recorder, env: dict[str, str]
) -> None:
    status(provider, "llm-selfhost", steps, env, PRICES)
    assert steps.lines == ["No vast.ai instance is labelled llm-selfhost."]


def test_the_price_table_in_group_data_is_dated() -> None:
    prices = group_data()["fleet_anthropic_prices"]
    assert prices["date"] and prices["source"].startswith("https://")
    assert set(prices) >= {"opus", "sonnet", "haiku"}
    assert all(set(prices[c]) == {"input", "output"} for c in ("opus", "sonnet", "haiku"))


def test_a_running_instance_without_ssh_endpoint_is_reported_not_raised(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str], fleet: list[int]
) -> None:
    vast.market.instances[-1].update(ssh_host=None, ssh_port=None, ports={})
    data = collect(provider, "llm-selfhost", steps, env, PRICES)
    assert [r["health"] for r in data["instances"]] == ["healthy", "no SSH endpoint"]
