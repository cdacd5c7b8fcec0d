"""`fleet down`: list the labelled instances with their cost so far, ask, destroy them.

Only instances carrying the label are touched; destroying deletes their disks and stops all
billing for them.
"""

from __future__ import annotations

from fleet.cost import spent
from fleet.errors import FleetError
from fleet.provider import Provider
from fleet.steps import Steps


def down(provider: Provider, label: str, steps: Steps, *, yes: bool = False) -> list[int]:
    """Destroy every instance labelled `label` (after asking unless `yes`); return their ids."""
    rows = provider.list_instances(label)
    if not rows:
        steps.say(f"No {provider.name} instance is labelled {label}; nothing to destroy.")
        return []
    now = steps.now()
    steps.say(f"Instances labelled {label}:")
    for row in rows:
        cost = spent(row, now).total
        steps.say(f"  {row.id}  {row.gpu}  {row.state}  ${cost:.2f} so far")
    total = sum(spent(row, now).total for row in rows)
    if not yes and not steps.confirm(
        f"Destroy these {len(rows)} instance(s) and their disks (${total:.2f} spent so far)?"
    ):
        raise FleetError("Nothing destroyed: you answered no.")
    for row in rows:
        provider.destroy(row.id)
        steps.say(f"Destroyed instance {row.id}.")
    steps.say(f"Billing for these {len(rows)} instance(s) has stopped; their disks are gone.")
    return [row.id for row in rows]
