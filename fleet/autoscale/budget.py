"""Money rules of the autoscaler, pure: may a host be added, and what was spent today.

A host is added only when the fleet's $/h with it stays within BUDGET_PER_HOUR and the day's
spend plus one hour of it stays within BUDGET_PER_DAY; otherwise `refusal` says why, naming the
budget and the price. Today's spend is integrated by the loop from the fleet's billed $/h at
each look (`accrue`), per UTC day.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fleet.autoscale.policy import Settings


def refusal(
    settings: Settings, fleet_dph: float, spent_today: float, added_dph: float
) -> str | None:
    """Why a host costing `added_dph` more per hour may not be added; None when it may.

    + fleet_dph: what the fleet is billed per hour now (stopped hosts: their disks)
    + spent_today: $ spent since 00:00 UTC
    + added_dph: the extra $/h (a rent: the offer's price; a start: its price minus its disk)
    """
    if added_dph > settings.max_price:
        return f"its price ${added_dph:.3f}/h is above MAX_PRICE=${settings.max_price:.2f}/h"
    total = fleet_dph + added_dph
    if total > settings.budget_per_hour + 1e-9:
        return (
            f"the fleet would cost ${total:.3f}/h with it (${fleet_dph:.3f}/h now +"
            f" ${added_dph:.3f}/h), over BUDGET_PER_HOUR=${settings.budget_per_hour:.2f}/h"
        )
    if spent_today + added_dph > settings.budget_per_day + 1e-9:
        return (
            f"${spent_today:.2f} spent today plus an hour of it (${added_dph:.3f}) would pass"
            f" BUDGET_PER_DAY=${settings.budget_per_day:.2f}"
        )
    return None


@dataclass(frozen=True)
class Ledger:
    """Today's spend, integrated look by look."""

    day: str = ""  # YYYY-MM-DD (UTC) the spend belongs to
    spent: float = 0.0
    at: float | None = None  # Unix time of the last look
    dph: float = 0.0  # what was billed per hour since then


def day_of(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def accrue(ledger: Ledger, now: float, dph: float) -> Ledger:
    """Add the time since the last look at the last look's $/h; a new UTC day starts at 0."""
    spent = ledger.spent
    if ledger.at is not None and now > ledger.at:
        spent += ledger.dph * (now - ledger.at) / 3600.0
    if day_of(now) != ledger.day:
        spent = 0.0 if ledger.day else spent
    return Ledger(day=day_of(now), spent=spent, at=now, dph=dph)
