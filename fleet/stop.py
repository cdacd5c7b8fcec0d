"""`fleet stop`: release the GPUs of the labelled instances and keep their disks.

A stopped instance's disk is still billed until `fleet down`; `fleet start` may have to wait for
its GPU if someone else rented it meanwhile.
"""

from __future__ import annotations

from fleet.provider import Provider
from fleet.steps import Steps


def stop(provider: Provider, label: str, steps: Steps) -> list[int]:
    """Stop every labelled instance that is not stopped already; return their ids."""
    rows = provider.list_instances(label)
    running = [i for i in rows if not i.stopped]
    if not running:
        steps.say(f"No labelled ({label}) instance is running; nothing to stop.")
        return []
    for instance in running:
        provider.stop(instance.id)
        steps.say(f"Stopped instance {instance.id}.")
    storage = sum(i.storage_dph for i in rows)
    steps.say(
        f"The GPUs are released; the disks stay and are still billed (${storage:.4f}/h for"
        f" {len(rows)} instance(s)) until `make down`. `make start` resumes them."
    )
    return [i.id for i in running]
