"""The autoscaler's state file: memory, today's spend, the rent in progress, the last decisions.

One JSON file (AUTOSCALE_STATE, default `.autoscale/state.json`), rewritten atomically after
every look, read again at start (a restarted autoscaler goes on where it was) and by
`make status`. Before each rent the autoscaler records its intent (the offer and the instances
it knew); a restart finding that record settles it by listing the instances, so a kill in the
middle of a rent leaves nothing unaccounted for and nothing is rented twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleet.autoscale.budget import Ledger
from fleet.autoscale.policy import Memory

DEFAULT_PATH = Path(__file__).resolve().parents[2] / ".autoscale" / "state.json"
KEEP_DECISIONS = 50


@dataclass
class State:
    memory: Memory = field(default_factory=Memory)
    ledger: Ledger = field(default_factory=Ledger)
    intent: dict[str, Any] | None = None  # {"offer", "known", "at"} while a rent is under way
    decisions: list[dict[str, Any]] = field(default_factory=list)  # newest last
    counters: dict[str, int] = field(default_factory=dict)  # refused_budget, failed, rented, …
    deployed: list[int] = field(default_factory=list)  # instances deployed (a start needs none)
    last_ok: float | None = None  # when the last action succeeded (or nothing was needed)
    settings: dict[str, Any] = field(default_factory=dict)
    fleet: dict[str, Any] = field(default_factory=dict)  # the last look, for `make status`

    def record(self, entry: Mapping[str, Any]) -> None:
        self.decisions = [*self.decisions, dict(entry)][-KEEP_DECISIONS:]

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


def _memory(data: Mapping[str, Any]) -> Memory:
    def ints(key: str) -> dict[int, Any]:
        return {int(k): v for k, v in (data.get(key) or {}).items()}

    return Memory(
        pressure_since=data.get("pressure_since"),
        at=data.get("at"),
        served=int(data.get("served") or 0),
        queue=float(data.get("queue") or 0),
        rate=float(data.get("rate") or 0),
        refused=int(data.get("refused") or 0),
        refused_new=int(data.get("refused_new") or 0),
        last_active=ints("last_active"),
        requests=ints("requests"),
        since=ints("since"),
        serving=[int(i) for i in data.get("serving") or []],
    )


def load(path: Path) -> State:
    """The state in `path`; a fresh one when the file is missing."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return State()
    return State(
        memory=_memory(data.get("memory") or {}),
        ledger=Ledger(**(data.get("ledger") or {})),
        intent=data.get("intent"),
        decisions=list(data.get("decisions") or []),
        counters=dict(data.get("counters") or {}),
        deployed=[int(i) for i in data.get("deployed") or []],
        last_ok=data.get("last_ok"),
        settings=dict(data.get("settings") or {}),
        fleet=dict(data.get("fleet") or {}),
    )


def save(state: State, path: Path) -> None:
    """Write `state` to `path` atomically (a kill never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state), indent=1, sort_keys=True))
    os.replace(temporary, path)
