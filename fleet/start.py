"""`fleet start`: give the stopped labelled instances their GPUs back, without a deploy.

The services come back by themselves (the on-start hook: roles/services.py ONSTART_COMMAND);
this command waits for each instance to run and answer SSH, runs the host checks and prints each
host's health.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleet.hosts import host_data
from fleet.provider import Provider
from fleet.steps import Steps
from fleet.wait import wait_ready


def start(
    provider: Provider, label: str, steps: Steps, env: Mapping[str, str], timeout: float = 900.0
) -> list[int]:
    """Start every stopped labelled instance; wait, check, print health; return their ids."""
    stopped = [i for i in provider.list_instances(label) if i.stopped]
    if not stopped:
        steps.say(f"No labelled ({label}) instance is stopped; nothing to start.")
        return []
    ids = [i.id for i in stopped]
    for instance_id in ids:
        provider.start(instance_id)
        steps.say(f"Starting instance {instance_id}.")
    steps.say(
        "Waiting for them to run and answer SSH (if a GPU was rented by someone else"
        " meanwhile, the provider waits for it):"
    )
    ready = wait_ready(provider, label, ids, steps, timeout)
    hosts = [i.name for i in ready]
    steps.check(hosts, {**steps.env, "VAST_LABEL": label})
    for instance in ready:
        report = steps.read_host(host_data(instance, env))
        steps.say(f"{instance.name}: proxy_app {report.health}")
    return ids
