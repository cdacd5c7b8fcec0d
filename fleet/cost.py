"""Money: what an instance has cost so far, and what its tokens would cost at Anthropic.

From an `Instance` (fleet/provider.py; on vast.ai from the row of `GET /api/v1/instances/`):
- `dph` is the whole $/h while running: GPU plus the disk (vast's `dph_total`);
- `storage_dph` is the disk's $/h, billed from `started_at` until destroy, stopped too
  (vast's `storage_total_cost`, else `storage_cost` $/GB/month x `disk_space` / 720:
  `storage_per_hour`);
- `uptime_mins` is how long the current run has been up.
The provider keeps no history of earlier runs, so compute is counted for the current run only.

    spent(instance, now) -> Spent(compute=0.70, storage=0.03)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleet.provider import Instance

HOURS_PER_MONTH = 720.0
CLASSES = ("opus", "sonnet", "haiku")
# The default of the data key `fleet_anthropic_prices`: Anthropic's API list prices in $ per
# million tokens, by the model class Claude Code asked for (tokens of other ids count as sonnet).
# Read on 2026-11-30 from a stored copy of Anthropic's pricing page listing Claude Opus 4.6,
# Sonnet 4.6 and Haiku 4.5; override the whole table in group_data/vast.py when prices change.
ANTHROPIC_PRICES: dict[str, Any] = {
    "date": "2026-11-30",
    "source": "https://platform.claude.com/docs/en/about-claude/pricing",
    "opus": {"input": 5.0, "output": 25.0},
    "sonnet": {"input": 3.0, "output": 15.0},
    "haiku": {"input": 1.0, "output": 5.0},
}


@dataclass(frozen=True)
class Spent:
    compute: float
    storage: float

    @property
    def total(self) -> float:
        return self.compute + self.storage


def storage_per_hour(row: Mapping[str, Any]) -> float:
    """A vast.ai row's disk $/h: storage_total_cost, else storage_cost $/GB/month x disk / 720."""
    if row.get("storage_total_cost") is not None:
        return float(row["storage_total_cost"])
    return float(row.get("storage_cost") or 0) * float(row.get("disk_space") or 0) / HOURS_PER_MONTH


def compute_per_hour(instance: Instance) -> float:
    """The GPU's $/h while running: the whole price minus the disk."""
    return max(instance.dph - instance.storage_dph, 0.0)


def running_hours(instance: Instance) -> float:
    """Hours of the current run, 0 when not running."""
    if instance.state != "running":
        return 0.0
    return (instance.uptime_mins or 0.0) / 60.0


def spent(instance: Instance, now: float) -> Spent:
    """Cost so far: compute for the current run, storage since the rental began."""
    started = instance.started_at
    hours = 0.0 if started is None else max(now - started, 0.0) / 3600.0
    return Spent(compute_per_hour(instance) * running_hours(instance), instance.storage_dph * hours)


def per_million(dollars: float, tokens: int) -> float | None:
    """$ per million tokens, None without tokens."""
    return dollars / tokens * 1e6 if tokens else None


def anthropic_cost(
    tokens: Mapping[tuple[str, str], int], prices: Mapping[str, Any], fallback: str = "sonnet"
) -> float:
    """What `tokens` {(class, direction): n} cost at `prices` ($ per million tokens by class);
    tokens of no known class (`other`) are priced as `fallback`."""
    total = 0.0
    for (family, direction), count in tokens.items():
        table = prices[family if family in CLASSES else fallback]
        total += count * float(table[direction]) / 1e6
    return total
