"""An instance as a host: the SSH data inventories/vast.py would give it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleet.errors import FleetError
from fleet.provider import Instance
from inventories.vast_api import connection_data, known_hosts_file


def host_data(instance: Instance, env: Mapping[str, str]) -> dict[str, Any]:
    """`ssh_hostname`, `ssh_port`, `ssh_user`, known_hosts and key (as in the inventory), and
    `instance_id`."""
    if instance.endpoint is None:
        raise FleetError(
            f"Instance {instance.id} has no usable SSH endpoint ({instance.state}); check its"
            " launch mode, `args` runs no sshd."
        )
    host, port = instance.endpoint
    data: dict[str, Any] = {"ssh_hostname": host, "ssh_port": port, "instance_id": instance.id}
    return {**data, **connection_data(env, known_hosts_file(env))}
