"""What `make status` says about the autoscaler: its last look, spend against the budgets, its
last decisions, and the alerts of monitoring/rules.yml that its state shows firing now.

Evaluated here (same thresholds as the rules): SpendNearBudget, HostStuckLoading, HostDown,
AutoscalerUnableToAct. Overloaded529Rising and TimeToFirstTokenDegrading need Prometheus'
history (rates over minutes) and are left to it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fleet.autoscale.state import State, load

NEAR = 0.9  # SpendNearBudget: within 10% of a budget
STUCK_SECONDS = 900  # HostStuckLoading
DOWN_SECONDS = 300  # HostDown's `for: 5m`
UNABLE_SECONDS = 900  # AutoscalerUnableToAct: no successful look for 15 minutes
SHOWN = 5  # decisions listed


def _spend(state: State) -> list[str]:
    budget = state.settings
    dph, today = float(state.fleet.get("dph") or 0), state.ledger.spent
    said = []
    if dph > NEAR * float(budget.get("budget_per_hour") or 0):
        said.append(
            f"SpendNearBudget: ${dph:.3f}/h of BUDGET_PER_HOUR=${budget['budget_per_hour']:.2f}"
        )
    if today > NEAR * float(budget.get("budget_per_day") or 0):
        said.append(
            f"SpendNearBudget: ${today:.2f} today of BUDGET_PER_DAY=${budget['budget_per_day']:.2f}"
        )
    return said


def _hosts(state: State, at: float) -> list[str]:
    said = []
    for host in state.fleet.get("hosts") or []:
        since = state.memory.since.get(int(host["id"]), at)
        quiet = at - since
        if (
            host["in_gateway"]
            and not host["serving"]
            and not host["draining"]
            and quiet > DOWN_SECONDS
        ):
            said.append(
                f"HostDown: {host['name']} has failed its health check for {quiet / 60:.0f} min"
            )
        booting = not (host["serving"] or host["stopped"] or host["outbid"] or host["draining"])
        if booting and quiet > STUCK_SECONDS:
            said.append(
                f"HostStuckLoading: {host['name']} added {quiet / 60:.0f} min ago, not serving"
            )
    return said


def firing(state: State, now: float) -> list[str]:
    """The alerts this state shows, one sentence each."""
    at = float(state.fleet.get("at") or now)
    said = _spend(state) + _hosts(state, at)
    if state.last_ok is not None and now - state.last_ok > UNABLE_SECONDS:
        said.append(
            f"AutoscalerUnableToAct: no successful look for {(now - state.last_ok) / 60:.0f} min"
            f" ({state.counters.get('failed', 0)} failed actions)"
        )
    return said


def summary(path: Path, now: float | None = None) -> dict[str, Any] | None:
    """The autoscaler's part of `make status --json`; None when it never ran here."""
    if not path.is_file():
        return None
    state = load(path)
    now = time.time() if now is None else now
    fleet = state.fleet
    return {
        "state_file": str(path),
        "last_look_s_ago": round(now - float(fleet.get("at") or now), 1),
        "serving": fleet.get("serving", 0),
        "live": fleet.get("live", 0),
        "waiting": fleet.get("waiting", 0),
        "dph": fleet.get("dph", 0.0),
        "spent_today": round(state.ledger.spent, 4),
        "budget_per_hour": state.settings.get("budget_per_hour"),
        "budget_per_day": state.settings.get("budget_per_day"),
        "counters": state.counters,
        "decisions": state.decisions[-SHOWN:],
        "alerts": firing(state, now),
    }


def _stamp(at: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(at))


def render(data: dict[str, Any]) -> str:
    """The autoscaler's lines under `make status`'s table."""
    lines = [
        f"Autoscaler ({data['state_file']}, last look {data['last_look_s_ago']:.0f} s ago):"
        f" {data['serving']} serving of {data['live']} live, {data['waiting']} waiting;"
        f" ${data['dph']:.3f}/h of BUDGET_PER_HOUR=${data['budget_per_hour']:.2f};"
        f" ${data['spent_today']:.2f} today of BUDGET_PER_DAY=${data['budget_per_day']:.2f}.",
        "Last decisions:",
    ]
    lines += [f"  {_stamp(d['at'])} {d['action']}: {d['reason']}" for d in data["decisions"]]
    alerts = data["alerts"]
    lines.append("Alerts firing now: " + ("none." if not alerts else ""))
    lines += [f"  {alert}" for alert in alerts]
    return "\n".join(lines)
