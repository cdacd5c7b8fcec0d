"""`fleet start`: give the stopped labelled instances their GPUs back, without a deploy.

The services come back by themselves (the on-start hook: roles/services.py ONSTART_COMMAND);
this command waits for each instance to run and answer SSH, runs the host checks and prints each
host's health.
"""

from __future__ import annotations

from collections.abc import Mapping

from vastai import VastAI

from fleet.hosts import host_data
from fleet.steps import Steps
from fleet.vast import call, host_name, labelled
from fleet.wait import wait_ready


def start(
    sdk: VastAI, label: str, steps: Steps, env: Mapping[str, str], timeout: float = 900.0
) -> list[int]:
    """Start every stopped labelled instance; wait, check, print health; return their ids."""
    stopped = [row for row in labelled(sdk, label) if row.get("intended_status") == "stopped"]
    if not stopped:
        steps.say(f"No labelled ({label}) instance is stopped; nothing to start.")
        return []
    ids = [row["id"] for row in stopped]
    for instance_id in ids:
        call(sdk, f"starting instance {instance_id}", sdk.start_instance, instance_id)
        steps.say(f"Starting instance {instance_id}.")
    steps.say(
        "Waiting for them to run and answer SSH (if a GPU was rented by someone else"
        " meanwhile, vast.ai waits for it):"
    )
    ready = wait_ready(sdk, ids, steps, timeout)
    hosts = [host_name(row) for row in ready]
    steps.check(hosts, {**steps.env, "VAST_LABEL": label})
    for row in ready:
        report = steps.read_host(host_data(row, env))
        steps.say(f"{host_name(row)}: proxy_app {report.health}")
    return ids
