"""The autoscaler's loop: observe (the provider's instances, the gateway's numbers), ask the
policy, act, log one line, save the state. It decides nothing itself (fleet/autoscale/policy.py).

    scaler = Autoscaler(settings, provider, gateway, steps, state_path, env, rental, wanted)
    scaler.tick()          # one look, at most one action; `run` repeats it every interval

Each decision is one log line: the action, the reason with its numbers, and the fleet's $/h
after it. A rent is preceded by an intent record in the state file (fleet/autoscale/state.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from fleet.admin import Load
from fleet.autoscale import state as state_file
from fleet.autoscale.budget import accrue, refusal
from fleet.autoscale.policy import Decision, Host, Observed, Settings, decide, wait_estimate
from fleet.errors import FleetError
from fleet.hosts import host_data
from fleet.provider import Instance, Provider, Rental, Wanted, by_id
from fleet.steps import Steps
from fleet.up import create_one
from fleet.wait import ready


class Gateway(Protocol):
    """What the loop needs from the running gateway (fleet/autoscale/pool.py)."""

    def members(self) -> Mapping[str, bool]:
        """Host name -> draining."""
        ...

    def join(self, name: str, data: Mapping[str, Any]) -> None: ...

    def drain(self, name: str) -> None: ...

    def leave(self, name: str) -> None: ...

    def load(self) -> Load: ...


def _stamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


@dataclass
class Autoscaler:
    settings: Settings
    provider: Provider
    gateway: Gateway
    steps: Steps
    path: Path
    env: Mapping[str, str]
    rental: Rental
    wanted: Wanted
    state: state_file.State = field(init=False)
    log: Callable[[str], None] = field(default=print)

    def __post_init__(self) -> None:
        self.state = state_file.load(self.path)
        self.state.settings = {k: v for k, v in vars(self.settings).items()}

    # ------------------------------------------------------------------ observe

    def _host(self, instance: Instance, load: Load, members: Mapping[str, bool]) -> Host:
        seen = load.hosts.get(instance.name)
        return Host(
            id=instance.id,
            name=instance.name,
            state=instance.state,
            stopped=instance.stopped,
            dph=instance.dph,
            storage_dph=instance.storage_dph,
            outbid=instance.interrupted,
            ssh_ok=ready(instance, self.steps),
            in_gateway=instance.name in members,
            serving=seen is not None and seen.state.startswith("UP"),
            draining=members.get(instance.name, False),
            in_flight=seen.in_flight if seen else 0,
            requests=seen.requests if seen else 0,
        )

    def observe(self, instances: list[Instance], now: float) -> Observed:
        load = self.gateway.load()
        members = self.gateway.members()
        fleet_dph = sum(self.provider.price(i) for i in instances)
        self.state.ledger = accrue(self.state.ledger, now, fleet_dph)
        return Observed(
            now=now,
            hosts=tuple(self._host(i, load, members) for i in instances),
            waiting=load.waiting,
            refused=load.refused,
            fleet_dph=fleet_dph,
            spent_today=self.state.ledger.spent,
        )

    # ------------------------------------------------------------------ one look

    def tick(self) -> Decision:
        now = self.steps.now()
        instances = self.provider.list_instances(self.rental.label)
        self._settle_intent(instances, now)
        seen = self.observe(instances, now)
        decision, self.state.memory = decide(self.settings, seen, self.state.memory)
        try:
            decision = self._act(decision, by_id(instances), seen)
            self.state.last_ok = now
        except FleetError as exc:
            self.state.count("failed")
            decision = Decision("unable", f"{decision.action} failed: {exc}", decision.host)
        self._report(decision, seen, now)
        return decision

    def _settle_intent(self, instances: list[Instance], now: float) -> None:
        """A rent the last run did not finish: adopt what it made, or say it made nothing."""
        intent = self.state.intent
        if intent is None:
            return
        new = [i.id for i in instances if i.id not in set(intent["known"])]
        what = f"adopted instance {new[0]}" if new else "it rented nothing"
        said = f"the rent of offer {intent['offer']} interrupted at {_stamp(intent['at'])}: {what}"
        self._line(now, "settle", said, "")
        self.state.intent = None
        state_file.save(self.state, self.path)

    # ------------------------------------------------------------------ act

    def _act(self, decision: Decision, instances: dict[int, Instance], seen: Observed) -> Decision:
        target = instances.get(decision.host) if decision.host is not None else None
        if decision.action == "add":
            return self._add(decision, target, seen)
        if target is None:
            return decision
        if decision.action == "join":
            self._join(target)
        elif decision.action == "leave":
            self.gateway.leave(target.name)
        elif decision.action == "drain":
            self.gateway.drain(target.name)
        elif decision.action == "retire":
            self._retire(target)
        elif decision.action == "replace":
            if target.name in self.gateway.members():
                self.gateway.leave(target.name)
            self.provider.destroy(target.id)
            gone = replace(decision, reason=f"{decision.reason}; destroyed it")
            added = self._rent(gone, seen, target.billed_dph)
            return added if added.action == "refuse" else replace(added, action="replace")
        return decision

    def _join(self, target: Instance) -> None:
        """Deploy a host never deployed by this autoscaler (a started one has its services back
        from its on-start hook), then add it to the gateway."""
        if target.id not in self.state.deployed:
            self.steps.deploy([target.name], {**self.steps.env, "VAST_LABEL": self.rental.label})
            self.state.deployed = [*self.state.deployed, target.id]
        self.gateway.join(target.name, host_data(target, self.env))

    def _retire(self, target: Instance) -> None:
        self.gateway.leave(target.name)
        if self.settings.scale_in == "destroy":
            self.provider.destroy(target.id)
        else:
            self.provider.stop(target.id)

    def _add(self, decision: Decision, target: Instance | None, seen: Observed) -> Decision:
        if target is None:
            return self._rent(decision, seen, 0.0)
        why = refusal(
            self.settings, seen.fleet_dph, seen.spent_today, target.dph - target.storage_dph
        )
        if why is not None:
            return self._refuse(decision, f"Not starting {target.name}: {why}.")
        self.provider.start(target.id)
        return decision

    def _refuse(self, decision: Decision, sentence: str) -> Decision:
        self.state.count("refused_budget")
        return Decision("refuse", f"{decision.reason}; {sentence}", decision.host)

    def _rent(self, decision: Decision, seen: Observed, freed_dph: float) -> Decision:
        """Rent the cheapest offer the budget allows (`freed_dph`: what a replaced host cost)."""
        wanted = replace(self.wanted, max_price=min(self.wanted.max_price, self.settings.max_price))
        offers = self.provider.offers(wanted, limit=5)
        if not offers:
            raise FleetError(self.provider.why_no_offer(wanted))
        offer = offers[0]
        price = offer.dph if self.rental.bid is None else self.rental.bid
        why = refusal(self.settings, seen.fleet_dph - freed_dph, seen.spent_today, price)
        if why is not None:
            return self._refuse(decision, f"Not renting {offer.text}: {why}.")
        known = [i.id for i in self.provider.list_instances(self.rental.label)]
        self.state.intent = {"offer": offer.id, "known": known, "at": seen.now}
        state_file.save(self.state, self.path)
        new_id = create_one(self.provider, offer, self.rental, set(known))
        self.state.intent = None
        if new_id is None:
            raise FleetError(f"offer {offer.id} was taken meanwhile; the next look tries another")
        self.state.count("rented")
        said = f"{decision.reason}: rented instance {new_id}, {offer.text}"
        return Decision("add", said, new_id)

    # ------------------------------------------------------------------ report

    def _report(self, decision: Decision, seen: Observed, now: float) -> None:
        after = sum(self.provider.price(i) for i in self.provider.list_instances(self.rental.label))
        serving = sum(1 for h in seen.hosts if h.serving and h.live)
        self.state.fleet = {
            "at": now,
            "serving": serving,
            "live": sum(1 for h in seen.hosts if h.live),
            "hosts": [vars(h) for h in seen.hosts],
            "waiting": seen.waiting,
            "wait_seconds": round(wait_estimate(self.state.memory), 3),
            "refused": seen.refused,
            "dph": after,
            "spent_today": self.state.ledger.spent,
        }
        if decision.action != "hold" or self._changed(decision):
            numbers = (
                f"{serving} serving, {seen.waiting} waiting, fleet ${seen.fleet_dph:.3f}/h ->"
                f" ${after:.3f}/h, ${self.state.ledger.spent:.2f} today"
            )
            self._line(now, decision.action, decision.reason, numbers)
        state_file.save(self.state, self.path)

    def _changed(self, decision: Decision) -> bool:
        """A hold is logged only when its reason differs from the last line's."""
        last = self.state.decisions[-1] if self.state.decisions else {}
        return last.get("action") != "hold" or last.get("reason") != decision.reason

    def _line(self, now: float, action: str, reason: str, numbers: str) -> None:
        entry = {"at": now, "action": action, "reason": reason, "numbers": numbers}
        self.state.record(entry)
        self.log(f"{_stamp(now)} {action}: {reason}" + (f" | {numbers}" if numbers else ""))

    def run(
        self,
        interval: float,
        after: Callable[[], None] = lambda: None,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Look every `interval` seconds (then `after()`) until `stop()` says so (or Ctrl-C)."""
        while not stop():
            started = self.steps.monotonic()
            decision = self.tick()
            took = self.steps.monotonic() - started
            if took > 3 * interval and decision.action not in ("join", "add", "replace"):
                self.log(f"{_stamp(self.steps.now())} slow look: {took:.1f} s ({decision.action})")
            after()
            self.steps.sleep(interval)
