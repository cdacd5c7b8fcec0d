"""`fleet up`: rent until COUNT labelled instances exist, wait, deploy, check, print the tunnels.

Idempotent on count: instances already carrying the label count, so a second run (or a run after
a failure) rents only what is missing, then waits for, deploys to and checks every labelled
instance that is not stopped. An offer taken meanwhile moves on to the next one; an ambiguous
create failure (no answer, a 5xx) is settled by listing the instances before anything else is
rented, so a retry never rents twice. Everything goes through fleet/provider.py's `Provider`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fleet.errors import ApiError, FleetError, OfferTakenError
from fleet.provider import Instance, Offer, Provider, Rental, Wanted
from fleet.steps import Steps
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

    @property
    def rental(self) -> Rental:
        wanted = self.wanted
        bid = wanted.price_cap if wanted.interruptible else None
        return Rental(self.label, self.image, wanted.disk_gb, ONSTART_COMMAND, bid)


def _table(offers: Sequence[Offer]) -> str:
    return "\n".join(f"  {offer.text}" for offer in offers)


def create_one(provider: Provider, offer: Offer, rental: Rental, known: set[int]) -> int | None:
    """Rent `offer`; None when it was taken. An unclear failure is settled by listing: an
    instance of the label not in `known` is the one this create made (never rent twice)."""
    try:
        return provider.create(offer, rental)
    except OfferTakenError:
        return None
    except ApiError:
        # No clear answer: did the provider create it anyway? Look before renting anything else.
        appeared = [i.id for i in provider.list_instances(rental.label) if i.id not in known]
        if not appeared:
            raise
        return appeared[0]


def rent(
    provider: Provider,
    offers: Sequence[Offer],
    need: int,
    rental: Rental,
    say: Callable[[str], None],
) -> list[int]:
    """Rent `need` instances from `offers` in order; a taken offer moves on to the next."""
    rented: list[int] = []
    known = {i.id for i in provider.list_instances(rental.label)}
    for offer in offers:
        if len(rented) == need:
            break
        new_id = create_one(provider, offer, rental, known)
        if new_id is None:
            say(f"Offer {offer.id} was taken meanwhile; trying the next one.")
            continue
        say(f"Rented instance {new_id} from offer {offer.id}.")
        rented.append(new_id)
        known.add(new_id)
    if len(rented) < need:
        raise FleetError(
            f"Rented {len(rented)} of {need} instances: the other matching offers were taken"
            " meanwhile; run the command again to rent the rest (what exists counts)."
        )
    return rented


def _choose(
    provider: Provider, need: int, options: UpOptions, steps: Steps, env: Mapping[str, str]
) -> list[Offer]:
    offers = provider.offers(options.wanted, limit=need + 20)
    if not offers:
        raise FleetError(provider.why_no_offer(options.wanted))
    if len(offers) < need:
        raise FleetError(
            f"Only {len(offers)} {provider.name} offers match, {need} are needed:\n"
            f"{_table(offers)}\nLoosen the filters or lower COUNT."
        )
    price = sum(o.dph for o in offers[:need])
    steps.say(f"Renting {need} instance(s), ${price:.3f}/h together, from:")
    steps.say(_table(offers[:need]))
    if len(offers) > need:
        steps.say(f"  (and {len(offers) - need} more in reserve if one is taken meanwhile)")
    provider.check_can_rent(env, price)
    if not options.yes and not steps.confirm(f"Rent {need} instance(s) at ${price:.3f}/h?"):
        raise FleetError("Nothing rented: you answered no.")
    return offers


def up(
    provider: Provider, options: UpOptions, steps: Steps, env: Mapping[str, str]
) -> list[Instance]:
    """Bring the labelled fleet to `options.count` deployed, checked instances."""
    existing = provider.list_instances(options.label)
    need = options.count - len(existing)
    if existing:
        summary = ", ".join(f"{i.id} ({i.state})" for i in existing)
        steps.say(f"Label {options.label}: {len(existing)} instance(s) already: {summary}.")
    if need > 0:
        offers = _choose(provider, need, options, steps, env)
        rent(provider, offers, need, options.rental, steps.say)
    elif need < 0:
        steps.say(f"That is {-need} more than COUNT={options.count}; `make down` removes all.")
    instances = provider.list_instances(options.label)
    stopped = [i.id for i in instances if i.stopped]
    if stopped:
        steps.say(f"Stopped, left alone: {', '.join(map(str, stopped))} (`make start` resumes).")
    targets = [i.id for i in instances if not i.stopped]
    if not targets:
        return []
    steps.say(f"Waiting for {len(targets)} instance(s) to run and answer SSH:")
    ready = wait_ready(provider, options.label, targets, steps, options.timeout)
    hosts = [i.name for i in ready]
    run_env = {**steps.env, "VAST_LABEL": options.label}
    steps.deploy(hosts, run_env)
    steps.check(hosts, run_env)
    steps.say(steps.tunnel(hosts, run_env))
    return ready
