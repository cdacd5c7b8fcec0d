"""`fleet up`: rent until COUNT labelled instances exist, wait, deploy, check, print the tunnels.

Idempotent on count: instances already carrying the label count, so a second run (or a run after
a failure) rents only what is missing, then waits for, deploys to and checks every labelled
instance that is not stopped. An offer taken meanwhile moves on to the next one; an ambiguous
create failure (no answer, a 5xx) is settled by listing the instances before anything else is
rented, so a retry never rents twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vastai import VastAI

from fleet.account import check_credit, check_ssh_key
from fleet.errors import ApiError, FleetError
from fleet.offers import Offer, Wanted, describe, search, why_none
from fleet.steps import Steps
from fleet.vast import Row, call, host_name, labelled, state
from fleet.wait import wait_ready
from roles.services import ONSTART_COMMAND


@dataclass
class UpOptions:
    count: int = 1
    wanted: Wanted = field(default_factory=Wanted)
    image: str = "vastai/base-image:cuda-12.4.1-auto"
    yes: bool = False
    timeout: float = 900.0
    label: str = "llm-selfhost"


def _table(offers: Sequence[Offer], wanted: Wanted) -> str:
    return "\n".join(f"  {describe(offer, wanted)}" for offer in offers)


def _create(sdk: VastAI, offer: Offer, options: UpOptions) -> int:
    """Rent one offer; one attempt only (the SDK would retry a lost answer)."""
    wanted = options.wanted
    retry, sdk.client.retry = sdk.client.retry, 1
    try:
        answer = call(
            sdk,
            f"renting offer {offer['id']}",
            sdk.create_instance,
            offer["id"],
            image=options.image,
            disk=wanted.disk_gb,
            label=options.label,
            onstart_cmd=ONSTART_COMMAND,
            ssh=True,
            direct=True,
            price=wanted.price_cap if wanted.interruptible else None,
        )
    finally:
        sdk.client.retry = retry
    return int(answer["new_contract"])


def rent(
    sdk: VastAI, offers: Sequence[Offer], need: int, options: UpOptions, steps: Steps
) -> list[int]:
    """Rent `need` instances from `offers` in order; a taken offer moves on to the next."""
    rented: list[int] = []
    before = {row["id"] for row in labelled(sdk, options.label)}
    for offer in offers:
        if len(rented) == need:
            break
        try:
            new_id = _create(sdk, offer, options)
        except ApiError as exc:
            if exc.code in ("no_such_ask", "bid_too_low"):
                steps.say(f"Offer {offer['id']} was taken meanwhile; trying the next one.")
                continue
            # No clear answer: did vast create it anyway? Look before renting anything else.
            appeared = [r["id"] for r in labelled(sdk, options.label) if r["id"] not in before]
            if not appeared:
                raise
            new_id = appeared[0]
        steps.say(f"Rented instance {new_id} from offer {offer['id']}.")
        rented.append(new_id)
        before.add(new_id)
    if len(rented) < need:
        raise FleetError(
            f"Rented {len(rented)} of {need} instances: the other matching offers were taken"
            " meanwhile; run the command again to rent the rest (what exists counts)."
        )
    return rented


def _choose(sdk: VastAI, need: int, options: UpOptions, steps: Steps) -> list[Offer]:
    offers = search(sdk, options.wanted, limit=need + 20)
    if not offers:
        raise FleetError(why_none(sdk, options.wanted))
    if len(offers) < need:
        raise FleetError(
            f"Only {len(offers)} vast.ai offers match, {need} are needed:\n"
            f"{_table(offers, options.wanted)}\nLoosen the filters or lower COUNT."
        )
    price = sum(float(o.get(options.wanted.price_field) or 0) for o in offers[:need])
    steps.say(f"Renting {need} instance(s), ${price:.3f}/h together, from:")
    steps.say(_table(offers[:need], options.wanted))
    if len(offers) > need:
        steps.say(f"  (and {len(offers) - need} more in reserve if one is taken meanwhile)")
    check_credit(sdk, price)
    if not options.yes and not steps.confirm(f"Rent {need} instance(s) at ${price:.3f}/h?"):
        raise FleetError("Nothing rented: you answered no.")
    return offers


def up(sdk: VastAI, options: UpOptions, steps: Steps, env: Mapping[str, str]) -> list[Row]:
    """Bring the labelled fleet to `options.count` deployed, checked instances."""
    existing = labelled(sdk, options.label)
    need = options.count - len(existing)
    if existing:
        summary = ", ".join(f"{r['id']} ({state(r)})" for r in existing)
        steps.say(f"Label {options.label}: {len(existing)} instance(s) already: {summary}.")
    if need > 0:
        check_ssh_key(sdk, env)
        rent(sdk, _choose(sdk, need, options, steps), need, options, steps)
    elif need < 0:
        steps.say(f"That is {-need} more than COUNT={options.count}; `make down` removes all.")
    rows = labelled(sdk, options.label)
    stopped = [r["id"] for r in rows if r.get("intended_status") == "stopped"]
    if stopped:
        steps.say(f"Stopped, left alone: {', '.join(map(str, stopped))} (`make start` resumes).")
    targets = [r["id"] for r in rows if r.get("intended_status") != "stopped"]
    if not targets:
        return []
    steps.say(f"Waiting for {len(targets)} instance(s) to run and answer SSH:")
    ready = wait_ready(sdk, targets, steps, options.timeout)
    hosts = [host_name(row) for row in ready]
    run_env = {**steps.env, "VAST_LABEL": options.label}
    steps.deploy(hosts, run_env)
    steps.check(hosts, run_env)
    steps.say(steps.tunnel(hosts, run_env))
    return ready
