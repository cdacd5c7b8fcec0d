"""`fleet stop`: release the GPUs of the labelled instances and keep their disks.

A stopped instance's disk is still billed until `fleet down`; `fleet start` may have to wait for
its GPU if someone else rented it meanwhile.
"""

from __future__ import annotations

from vastai import VastAI

from fleet.cost import storage_per_hour
from fleet.steps import Steps
from fleet.vast import call, labelled


def stop(sdk: VastAI, label: str, steps: Steps) -> list[int]:
    """Stop every labelled instance that is not stopped already; return their ids."""
    rows = labelled(sdk, label)
    running = [row for row in rows if row.get("intended_status") != "stopped"]
    if not running:
        steps.say(f"No labelled ({label}) instance is running; nothing to stop.")
        return []
    for row in running:
        call(sdk, f"stopping instance {row['id']}", sdk.stop_instance, row["id"])
        steps.say(f"Stopped instance {row['id']}.")
    storage = sum(storage_per_hour(row) for row in rows)
    steps.say(
        f"The GPUs are released; the disks stay and are still billed (${storage:.4f}/h for"
        f" {len(rows)} instance(s)) until `make down`. `make start` resumes them."
    )
    return [row["id"] for row in running]
