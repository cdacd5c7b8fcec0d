"""Waiting for instances to be `running` with SSH answering, saying what happens meanwhile.

A timeout destroys nothing: it raises a sentence listing what each instance is doing and the
ways on (wait and run again, look at the logs, or `make down`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleet.errors import FleetError
from fleet.provider import Instance, Provider, by_id
from fleet.steps import Steps


def _situation(instance: Instance | None, ssh_ok: bool) -> str:
    if instance is None:
        return "gone (destroyed outside this command)"
    now = instance.state
    said = f"{now} ({instance.status_msg})" if instance.status_msg else now
    if now == "running" and not ssh_ok:
        return f"{said}, SSH not answering yet"
    return said


def ready(instance: Instance, steps: Steps) -> bool:
    """Running, with an SSH endpoint that answers."""
    if not instance.running or instance.endpoint is None:
        return False
    return steps.ssh_ready(*instance.endpoint)


def wait_ready(
    provider: Provider, label: str, ids: Sequence[int], steps: Steps, timeout: float
) -> list[Instance]:
    """Poll until every instance in `ids` runs and answers SSH; return them.

    Prints a line whenever an instance's state or status message changes, with the elapsed
    time. Raises FleetError after `timeout` seconds with what each instance is doing.
    """
    started = steps.monotonic()
    last: dict[int, str] = {}
    while True:
        seen = by_id(provider.list_instances(label))
        up = {i: i in seen and ready(seen[i], steps) for i in ids}
        elapsed = steps.monotonic() - started
        for i in ids:
            now = "ready (running, SSH answers)" if up[i] else _situation(seen.get(i), False)
            if last.get(i) != now:
                steps.say(f"  [{elapsed:5.0f} s] instance {i}: {now}")
                last[i] = now
        if all(up.values()):
            return [seen[i] for i in ids]
        gone = [i for i in ids if i not in seen]
        if gone:
            raise FleetError(
                f"Instance {', '.join(map(str, gone))} disappeared while starting (destroyed"
                f" from the console, or by {provider.name}); run the command again to replace it."
            )
        if elapsed >= timeout:
            raise FleetError(_timeout_message(ids, seen, up, elapsed))
        steps.sleep(steps.poll_seconds)


def _timeout_message(
    ids: Sequence[int], seen: Mapping[int, Instance], up: Mapping[int, bool], elapsed: float
) -> str:
    said = "; ".join(
        f"instance {i} is {'ready' if up[i] else _situation(seen[i], up[i])}" for i in ids
    )
    stuck = [str(i) for i in ids if seen[i].state in ("loading", "provisioning")]
    hint = (
        f" An instance stuck loading is usually a slow image pull or a bad host: see `vastai logs"
        f" {stuck[0]}`, and destroy it with `make down` if it does not move."
        if stuck
        else ""
    )
    return (
        f"Gave up waiting after {elapsed:.0f} s: {said}. Nothing was destroyed (they are still"
        f" billed).{hint} Run the same command again to keep waiting (it rents nothing more),"
        " or `make down` to destroy them."
    )
