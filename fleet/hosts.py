"""An instance row as a host: the SSH data inventories/vast.py would give it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleet.errors import FleetError
from inventories.vast_api import (
    VastInventoryError,
    connection_data,
    instance_host,
    known_hosts_file,
)


def host_data(row: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """`ssh_hostname`, `ssh_port`, `ssh_user`, known_hosts and key, as in the inventory."""
    try:
        _, data = instance_host(row, connection_data(env, known_hosts_file(env)))
    except VastInventoryError as exc:
        raise FleetError(str(exc)) from exc
    return data
