"""The deploy's host data on the control machine, applied the way pyinfra applies it.

One loader for every command that needs a host's data (the tunnel, the gateway, the autoscaler,
`make status` and the fleet commands): ``pyinfra <inventory> debug-inventory --json`` run from the
repository root, so pyinfra itself reads the inventory and `group_data/` and gives each host's
``host.data``: host data over its groups' data over `group_data/all.py`. (A subprocess, because
importing pyinfra's CLI monkey-patches the importing process with gevent.) Every role applies its
`defaults.py` beneath that (``@deploy(data_defaults=DEFAULTS)``: the lowest layer); the roles'
keys are disjoint, so here all of them sit beneath the data at once.

    load_inventory("inventories/local.py")  -> [{"name", "groups", "data"}, …]
    group_data()                             -> the data of a vast.ai host before it exists
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fleet.cost import ANTHROPIC_PRICES
from fleet.errors import FleetError, TunnelError
from roles.llamacpp.defaults import DEFAULTS as LLAMACPP
from roles.ollama.defaults import DEFAULTS as OLLAMA
from roles.proxy.defaults import DEFAULTS as PROXY
from roles.redis.defaults import DEFAULTS as REDIS

REPO = Path(__file__).resolve().parents[1]
PYINFRA = Path(sys.executable).with_name("pyinfra")
# The name of the one host group_data() loads: a host of the group before any exists.
NEW_HOST = "new-host"


def role_defaults() -> dict[str, Any]:
    """Every role's DEFAULTS merged: the values a deploy uses when no data overrides them."""
    return copy.deepcopy({**OLLAMA, **LLAMACPP, **REDIS, **PROXY})


def load_inventory(
    inventory: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> list[dict[str, Any]]:
    """Return ``[{"name", "groups", "data"}…]`` for an inventory file, data over role defaults.

    ``env`` is added to pyinfra's environment (the inventory file reads e.g. VAST_URL or
    SANDBOX_STATE_DIR). Raises TunnelError with pyinfra's reason.
    """
    path = Path(inventory)
    if not path.is_file():
        raise TunnelError(f"The inventory {inventory} does not exist.")
    hosts = _load(path, role_defaults(), env, timeout, shown=str(inventory))
    if not hosts:
        raise TunnelError(f"The inventory {inventory} has no hosts.")
    return hosts


def group_data(group: str = "vast") -> dict[str, Any]:
    """The data a host of ``group`` gets before it exists: the role and fleet defaults
    (``fleet_anthropic_prices``), then `group_data/all.py`, then `group_data/<group>.py`."""
    defaults = {**role_defaults(), "fleet_anthropic_prices": copy.deepcopy(ANTHROPIC_PRICES)}
    with tempfile.TemporaryDirectory(prefix="llm-hostdata-") as tmp:
        inventory = Path(tmp) / f"{group}.py"  # the file's name is a group too, as in a deploy
        inventory.write_text(f"{group} = [{NEW_HOST!r}]\n")
        try:
            (entry,) = _load(inventory, defaults)
        except TunnelError as exc:
            raise FleetError(f"group_data/ does not load: {exc}") from exc
    data: dict[str, Any] = entry["data"]
    return data


def pick_host(hosts: Sequence[Mapping[str, Any]], name: str | None) -> Mapping[str, Any]:
    """The host called ``name``, or the first one when no name is given."""
    if name is None:
        return hosts[0]
    for entry in hosts:
        if entry["name"] == name:
            return entry
    names = ", ".join(str(h["name"]) for h in hosts)
    raise TunnelError(f"No host {name!r} in the inventory; it has: {names}.")


def _load(
    path: Path,
    defaults: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    shown: str = "",
) -> list[dict[str, Any]]:
    """Each host of the inventory file at ``path`` with its pyinfra data over ``defaults``.

    Raises TunnelError with pyinfra's reason when the inventory does not load.
    """
    argv = [str(PYINFRA), str(path.resolve()), "debug-inventory", "--json"]
    done = subprocess.run(
        argv,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    try:
        hosts = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        hosts = None
    if not isinstance(hosts, list):
        output = f"{done.stdout}\n{done.stderr}".splitlines()
        reasons = [line.strip() for line in output if "error" in line.lower()]
        reason = (reasons or [line.strip() for line in output if line.strip()] or ["no output"])[-1]
        reason = reason.removeprefix("--> ").removeprefix("pyinfra error in ")
        raise TunnelError(f"Could not load the inventory {shown or path}: {reason}")
    return [{**h, "data": {**defaults, **h.get("data", {})}} for h in hosts]
