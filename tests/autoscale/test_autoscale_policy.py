"""The autoscaler's pure policy and budget: observed numbers in, one decision out (table-driven)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleet.autoscale.budget import Ledger, accrue, refusal
from fleet.autoscale.policy import Host, Memory, Observed, Settings, decide

S = Settings(min_hosts=0, max_hosts=2, wait_seconds=2, sustain_seconds=30, idle_minutes=10)
UP = Host(1, "vast-1", "running", False, 0.30, 0.01, ssh_ok=True, in_gateway=True, serving=True)
UP2 = replace(UP, id=2, name="vast-2", dph=0.35)
STOPPED = Host(3, "vast-3", "stopped", True, 0.28, 0.01)
BOOTING = Host(4, "vast-4", "loading", False, 0.30)
NOW = 10_000.0


def look(*hosts: Host, **numbers: float) -> Observed:
    return Observed(NOW, tuple(hosts), **numbers)  # type: ignore[arg-type]


def fresh(*hosts: Host) -> Memory:
    """A memory in which every host was last active at NOW (just seen)."""
    return Memory(
        last_active={h.id: NOW for h in hosts}, requests={h.id: h.requests for h in hosts}
    )


def flowing(memory: Memory, wait: float, waiting: int = 3) -> Memory:
    """`memory` whose queue and completion rate make this look's wait estimate `wait` seconds
    (with `waiting` requests in the look and no request served since the last look)."""
    return replace(memory, at=NOW - 1, queue=waiting, rate=waiting / (0.7 * wait))


CASES: list[tuple[str, Settings, Observed, Memory, str, int | None, str]] = [
    ("nothing at all", S, look(), Memory(), "hold", None, "0 serving, 0 waiting"),
    (
        "a refused request wakes the stopped host",
        S,
        look(STOPPED, refused=1),
        Memory(),
        "add",
        3,
        "no host up and 1 request(s) refused, 0 waiting; start vast-3",
    ),
    (
        "a refused request with nothing stopped rents",
        S,
        look(refused=5),
        Memory(refused=3),
        "add",
        None,
        "no host up and 2 request(s) refused, 0 waiting; rent one",
    ),
    (
        "refusals already seen wake nothing",
        S,
        look(STOPPED, refused=5),
        Memory(refused=5),
        "hold",
        None,
        "0 serving",
    ),
    (
        "MAX_HOSTS=0 never wakes",
        replace(S, max_hosts=0),
        look(refused=1),
        Memory(),
        "hold",
        None,
        "0 serving",
    ),
    (
        "below MIN_HOSTS",
        replace(S, min_hosts=2),
        look(UP),
        fresh(UP),
        "add",
        None,
        "1 live host(s) < MIN_HOSTS=2; rent one",
    ),
    (
        "a running host answering SSH joins the gateway",
        S,
        look(replace(UP, in_gateway=False, serving=False)),
        fresh(UP),
        "join",
        1,
        "vast-1 is running and answers SSH",
    ),
    (
        "a stopped host still in the gateway leaves it",
        S,
        look(replace(STOPPED, in_gateway=True)),
        Memory(),
        "leave",
        3,
        "vast-3 is stopped",
    ),
    (
        "pressure not sustained yet",
        S,
        look(UP, waiting=3),
        replace(flowing(fresh(UP), 4.0), pressure_since=NOW - 10),
        "hold",
        None,
        "1 serving, 3 waiting",
    ),
    (
        "sustained pressure adds a host",
        S,
        look(UP, waiting=3),
        replace(flowing(fresh(UP), 4.0), pressure_since=NOW - 31),
        "add",
        None,
        "requests waited ~4.0 s (> 2 s; now 3 waiting) for 31 s with 1 host(s); rent one",
    ),
    (
        "short waits are no pressure",
        S,
        look(UP, waiting=3),
        replace(flowing(fresh(UP), 1.0), pressure_since=NOW - 100),
        "hold",
        None,
        "1 serving, 3 waiting",
    ),
    (
        "pressure at MAX_HOSTS adds nothing",
        S,
        look(UP, UP2, waiting=3),
        replace(flowing(fresh(UP, UP2), 4.0), pressure_since=NOW - 100),
        "hold",
        None,
        "2 serving, 3 waiting",
    ),
    (
        "pressure while a host boots adds nothing",
        S,
        look(UP, BOOTING, waiting=3),
        replace(flowing(fresh(UP, BOOTING), 4.0), pressure_since=NOW - 100),
        "hold",
        None,
        "1 serving, 3 waiting, booting vast-4",
    ),
    (
        "idle past IDLE_MINUTES drains the dearest idle host",
        S,
        look(UP, UP2),
        Memory(last_active={1: NOW - 700, 2: NOW - 601}, requests={1: 0, 2: 0}, serving=[1, 2]),
        "drain",
        2,
        "vast-2 had no request for 10.0 min (IDLE_MINUTES=10), 2 live > MIN_HOSTS=0",
    ),
    (
        "the last host drains too with MIN_HOSTS=0",
        S,
        look(UP),
        Memory(last_active={1: NOW - 601}, requests={1: 0}, serving=[1]),
        "drain",
        1,
        "vast-1 had no request for 10.0 min",
    ),
    (
        "MIN_HOSTS keeps the last one",
        replace(S, min_hosts=1),
        look(UP),
        Memory(last_active={1: NOW - 6000}, requests={1: 0}, serving=[1]),
        "hold",
        None,
        "1 serving, 0 waiting",
    ),
    (
        "new requests on a host reset its idle clock",
        S,
        look(replace(UP, requests=7)),
        Memory(last_active={1: NOW - 6000}, requests={1: 6}, serving=[1]),
        "hold",
        None,
        "1 serving",
    ),
    (
        "a stream in flight is not idle",
        S,
        look(replace(UP, in_flight=1)),
        Memory(last_active={1: NOW - 6000}, requests={1: 0}, serving=[1]),
        "hold",
        None,
        "1 serving",
    ),
    (
        "a drained host with no stream is retired",
        S,
        look(replace(UP, draining=True)),
        replace(fresh(UP), since={1: NOW - 5}),
        "retire",
        1,
        "vast-1 drained (its streams ended); stop it",
    ),
    (
        "a draining host with a stream waits",
        S,
        look(replace(UP, draining=True, in_flight=1)),
        replace(fresh(UP), since={1: NOW - 5}),
        "hold",
        None,
        "0 serving",
    ),
    (
        "a draining host past the drain timeout is retired anyway",
        replace(S, drain_seconds=60, scale_in="destroy"),
        look(replace(UP, draining=True, in_flight=1)),
        replace(fresh(UP), since={1: NOW - 61}),
        "retire",
        1,
        "vast-1 drained (drained 61 s); destroy it",
    ),
    (
        "an outbid host is replaced",
        S,
        look(UP, replace(UP2, state="stopped", outbid=True, serving=False)),
        fresh(UP, UP2),
        "replace",
        2,
        "vast-2 was outbid (stopped by the provider)",
    ),
    (
        "a host stuck loading is replaced",
        replace(S, boot_minutes=5),
        look(BOOTING),
        Memory(since={4: NOW - 301}),
        "replace",
        4,
        "vast-4 is stuck loading (5.0 min without serving, BOOT_MINUTES=5)",
    ),
]


@pytest.mark.parametrize(
    ("settings", "seen", "memory", "action", "host", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_autoscale_policy(
    settings: Settings,
    seen: Observed,
    memory: Memory,
    action: str,
    host: int | None,
    reason: str,
) -> None:
    decision, _ = decide(settings, seen, memory)
    assert (decision.action, decision.host) == (action, host), decision
    assert reason in decision.reason


def test_autoscale_pressure_clock_starts_and_resets() -> None:
    """Two requests wait at every look while one is served every 2 s: ~2 s... then 4 s each."""
    memory, served = fresh(UP), 0
    for t in range(0, 41, 5):  # a look every 5 s; 2 requests served between looks
        served += 2 if t else 0
        decision, memory = decide(
            S, replace(look(replace(UP, requests=served), waiting=4), now=NOW + t), memory
        )
        if t == 0:
            assert memory.pressure_since is None  # no completion rate known yet
    assert memory.rate == pytest.approx(0.4, abs=0.05)  # requests per second
    assert decision.action == "add"
    assert decision.reason.startswith("requests waited ~")
    assert "(> 2 s; now 4 waiting) for 3" in decision.reason
    drained = replace(look(replace(UP, requests=served + 10)), now=NOW + 45)
    for step in range(10):
        _, memory = decide(S, replace(drained, now=NOW + 45 + step), memory)
    assert memory.pressure_since is None


def test_autoscale_refusals_counted_once_and_after_a_gateway_restart() -> None:
    _, memory = decide(S, look(UP, refused=4), fresh(UP))
    assert (memory.refused, memory.refused_new) == (4, 4)
    _, memory = decide(S, look(UP, refused=4), memory)
    assert memory.refused_new == 0
    _, memory = decide(S, look(UP, refused=1), memory)  # HAProxy restarted: counts from 0
    assert memory.refused_new == 1


BUDGET = Settings(max_price=0.40, budget_per_hour=0.70, budget_per_day=5.0)


@pytest.mark.parametrize(
    ("fleet_dph", "spent", "added", "sentence"),
    [
        (0.30, 0.0, 0.35, None),
        (0.0, 0.0, 0.45, "its price $0.450/h is above MAX_PRICE=$0.40/h"),
        (
            0.40,
            0.0,
            0.35,
            "the fleet would cost $0.750/h with it ($0.400/h now + $0.350/h), over"
            " BUDGET_PER_HOUR=$0.70/h",
        ),
        (
            0.0,
            4.80,
            0.35,
            "$4.80 spent today plus an hour of it ($0.350) would pass BUDGET_PER_DAY=$5.00",
        ),
    ],
    ids=["fits", "over-max-price", "over-hourly-budget", "over-daily-budget"],
)
def test_autoscale_budget_refusal(
    fleet_dph: float, spent: float, added: float, sentence: str | None
) -> None:
    assert refusal(BUDGET, fleet_dph, spent, added) == sentence


def test_autoscale_ledger_integrates_and_starts_each_utc_day_at_zero() -> None:
    midnight = 1_790_208_000.0  # 2026-09-24T00:00:00Z
    ledger = accrue(Ledger(), midnight - 7200, 0.5)
    ledger = accrue(ledger, midnight - 3600, 0.5)
    assert ledger.spent == pytest.approx(0.5)
    ledger = accrue(ledger, midnight + 60, 0.2)
    assert (ledger.day, ledger.spent) == ("2026-09-24", 0.0)
    ledger = accrue(ledger, midnight + 60 + 1800, 0.2)
    assert ledger.spent == pytest.approx(0.1)


def test_autoscale_idle_time_counts_from_when_a_host_serves() -> None:
    booting = replace(UP, serving=False, in_gateway=False)
    memory = Memory(
        last_active={1: NOW - 6000}, requests={1: 0}, serving=[1]
    )  # first seen long ago
    # The look that joins it saw it booting; its deploy then took 5 minutes.
    _, memory = decide(S, replace(look(booting), now=NOW - 300), memory)
    decision, memory = decide(S, look(UP), memory)  # serving now, no request yet
    assert decision.action == "hold" and memory.last_active[1] == NOW
    assert decide(S, replace(look(UP), now=NOW + 599), memory)[0].action == "hold"
    decision, _ = decide(S, replace(look(UP), now=NOW + 600), memory)
    assert decision.action == "drain" and "10.0 min" in decision.reason
