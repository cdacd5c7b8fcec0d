"""The deploy's data as the fleet commands need it before any host exists.

The roles' defaults and the fleet's own (`fleet_anthropic_prices`), then `group_data/all.py`,
then `group_data/vast.py` (if present) — the same order pyinfra applies for `inventories/vast.py`.
The group data files are plain assignments; they are executed with runpy and their public,
non-module names kept.
"""

from __future__ import annotations

import runpy
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def group_data(repo: Path = REPO) -> dict[str, Any]:
    """Role and fleet defaults overridden by group_data/all.py and group_data/vast.py."""
    from fleet.cost import ANTHROPIC_PRICES
    from fleet.tunnel import role_defaults

    data = {**role_defaults(), "fleet_anthropic_prices": ANTHROPIC_PRICES}
    for name in ("all.py", "vast.py"):
        path = repo / "group_data" / name
        if path.is_file():
            values = runpy.run_path(str(path))
            data.update(
                {
                    key: value
                    for key, value in values.items()
                    if not key.startswith("_") and not isinstance(value, types.ModuleType)
                }
            )
    return data
