"""Waiting for instances to be `running` with SSH answering, saying what happens meanwhile.

A timeout destroys nothing: it raises a sentence listing what each instance is doing and the
ways on (wait and run again, look at the logs, or `make down`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vastai import VastAI

from fleet.errors import FleetError
from fleet.steps import Steps
from fleet.vast import Row, call, state
from inventories.vast_api import VastInventoryError, ssh_endpoint


def _situation(row: Mapping[str, Any] | None, ssh_ok: bool) -> str:
    if row is None:
        return "gone (destroyed outside this command)"
    now = state(row)
    msg = (row.get("status_msg") or "").strip()
    said = f"{now} ({msg})" if msg else now
    if now == "running" and not ssh_ok:
        return f"{said}, SSH not answering yet"
    return said


def _ready(row: Mapping[str, Any], steps: Steps) -> bool:
    if state(row) != "running":
        return False
    try:
        host, port = ssh_endpoint(row)
    except VastInventoryError:
        return False
    return steps.ssh_ready(host, port)


def wait_ready(sdk: VastAI, ids: Sequence[int], steps: Steps, timeout: float) -> list[Row]:
    """Poll until every instance in `ids` runs and answers SSH; return their rows.

    Prints a line whenever an instance's state or status message changes, with the elapsed
    time. Raises FleetError after `timeout` seconds with what each instance is doing.
    """
    started = steps.monotonic()
    last: dict[int, str] = {}
    while True:
        rows = {row["id"]: row for row in call(sdk, "listing instances", sdk.show_instances)}
        ready = {i: i in rows and _ready(rows[i], steps) for i in ids}
        elapsed = steps.monotonic() - started
        for i in ids:
            now = "ready (running, SSH answers)" if ready[i] else _situation(rows.get(i), False)
            if last.get(i) != now:
                steps.say(f"  [{elapsed:5.0f} s] instance {i}: {now}")
                last[i] = now
        if all(ready.values()):
            return [rows[i] for i in ids]
        gone = [i for i in ids if i not in rows]
        if gone:
            raise FleetError(
                f"Instance {', '.join(map(str, gone))} disappeared while starting (destroyed"
                " from the console, or by vast.ai); run the command again to replace it."
            )
        if elapsed >= timeout:
            raise FleetError(_timeout_message(ids, rows, ready, elapsed))
        steps.sleep(steps.poll_seconds)


def _timeout_message(
    ids: Sequence[int], rows: Mapping[int, Row], ready: Mapping[int, bool], elapsed: float
) -> str:
    seen = "; ".join(
        f"instance {i} is {'ready' if ready[i] else _situation(rows[i], ready[i])}" for i in ids
    )
    stuck = [str(i) for i in ids if state(rows[i]) in ("loading", "provisioning")]
    hint = (
        f" An instance stuck loading is usually a slow image pull or a bad host: see `vastai logs"
        f" {stuck[0]}`, and destroy it with `make down` if it does not move."
        if stuck
        else ""
    )
    return (
        f"Gave up waiting after {elapsed:.0f} s: {seen}. Nothing was destroyed (they are still"
        f" billed).{hint} Run the same command again to keep waiting (it rents nothing more),"
        " or `make down` to destroy them."
    )
