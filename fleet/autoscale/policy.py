"""The autoscaler's decision: a pure function of observed numbers (no I/O, no clock).

`decide(settings, observed, memory)` returns one `Decision` and the memory the next call needs
(when the pressure began, when each host last had work). The loop (fleet/autoscale/loop.py)
only observes and acts, as SkyPilot's serve controller does around `sky/serve/autoscalers.py`.
Rules, first match wins:

1. a draining host with no stream left (or past the drain timeout) is retired (stop/destroy);
2. an outbid interruptible host (stopped by the provider) or one stuck booting is replaced;
3. a running host the gateway does not have yet joins it (deploy, then add);
4. a host the gateway has but that is not running leaves it;
5. fewer live hosts than MIN_HOSTS: add one;
6. requests arrive or wait with no live host: wake one (scale from zero);
7. requests waited longer than the wait threshold for the sustain time: add one;
8. a host idle for IDLE_MINUTES, above MIN_HOSTS: drain it;
otherwise hold. "Add" starts the cheapest stopped host, else rents; `budget.refusal` may say no.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

# refuse (the budget said no) and unable (acting failed) are the loop's, never the policy's.
Action = Literal["hold", "add", "join", "leave", "drain", "retire", "replace", "refuse", "unable"]


@dataclass(frozen=True)
class Settings:
    """What the user sets (`make autoscale` variables); docs/autoscaling.md lists each."""

    min_hosts: int = 0
    max_hosts: int = 2
    max_price: float = 0.40  # $/h per host, disk included
    budget_per_hour: float = 1.00  # $/h for the whole fleet, disks of stopped hosts included
    budget_per_day: float = 12.00  # $ per UTC day
    wait_seconds: float = 2.0  # scale out when requests wait in the gateway longer than this…
    sustain_seconds: float = 30.0  # …for this long
    idle_minutes: float = 15.0  # scale in a host without requests for this long
    scale_in: Literal["stop", "destroy"] = "stop"  # stop keeps the disk (fast restart, billed)
    interruptible: bool = False
    bid: float | None = None  # $/h for interruptible rentals; default max_price
    boot_minutes: float = 20.0  # a host not serving this long after it was added is stuck
    drain_seconds: float = 600.0  # a draining host is retired after this even with streams


@dataclass(frozen=True)
class Host:
    """One labelled instance, as the provider and the gateway see it."""

    id: int
    name: str
    state: str  # the provider's: provisioning, loading, running, stopped, …
    stopped: bool  # we asked it to stop
    dph: float  # $/h running
    storage_dph: float = 0.0
    outbid: bool = False  # interruptible, stopped by the provider for a higher bid
    ssh_ok: bool = False  # running and SSH answers (ready to deploy)
    in_gateway: bool = False
    serving: bool = False  # the gateway's health check passes
    draining: bool = False
    in_flight: int = 0
    requests: int = 0  # the gateway's total for this host

    @property
    def live(self) -> bool:
        """Counts as capacity (now or soon): not stopped, outbid or draining."""
        return not (self.stopped or self.outbid or self.draining)


@dataclass(frozen=True)
class Observed:
    """One look at the fleet."""

    now: float  # seconds (any epoch; the state file uses Unix time)
    hosts: tuple[Host, ...]
    waiting: int = 0  # requests queued in the gateway now
    refused: int = 0  # 529s the gateway answered itself, in total (no host up, queue full)
    fleet_dph: float = 0.0  # billed now: running hosts whole, stopped ones their disks
    spent_today: float = 0.0


@dataclass(frozen=True)
class Memory:
    """What the policy remembers between looks (kept in the state file)."""

    pressure_since: float | None = None
    # Little's law over the looks: wait ≈ queue length / completion rate, both smoothed.
    at: float | None = None  # the last look
    served: int = 0  # requests the hosts had served by then (the gateway's totals)
    queue: float = 0.0  # smoothed requests waiting
    rate: float = 0.0  # smoothed requests served per second
    refused: int = 0  # the gateway's total at the last look
    refused_new: int = 0  # refused since the look before
    last_active: dict[int, float] = field(default_factory=dict)  # host id -> last work seen
    requests: dict[int, int] = field(default_factory=dict)  # host id -> gateway total seen
    since: dict[int, float] = field(default_factory=dict)  # host id -> added/draining since
    serving: list[int] = field(default_factory=list)  # hosts serving at the last look


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    host: int | None = None  # the instance acted on (add: the stopped one to start, if any)


def decide(settings: Settings, seen: Observed, memory: Memory) -> tuple[Decision, Memory]:
    """The one thing to do now, and the memory for the next look."""
    memory = _remember(settings, seen, memory)
    for rule in (_retire, _replace, _join, _leave, _minimum, _wake, _pressure, _idle):
        decision = rule(settings, seen, memory)
        if decision is not None:
            return decision, memory
    return Decision("hold", _holding(seen)), memory


SMOOTHING = 0.3  # weight of a new look in the queue and rate averages
STUCK = 3600.0  # the wait estimate when requests wait and none is served


def wait_estimate(memory: Memory) -> float:
    """Seconds a request waits in the gateway, by Little's law (queue / rate)."""
    if memory.queue < 0.05:
        return 0.0
    return min(memory.queue / memory.rate, STUCK) if memory.rate > 0 else STUCK


def _flow(seen: Observed, memory: Memory) -> Memory:
    """The smoothed queue length and completion rate, with this look."""
    served = sum(host.requests for host in seen.hosts)
    queue = SMOOTHING * seen.waiting + (1 - SMOOTHING) * memory.queue
    if memory.at is None or seen.now <= memory.at:
        return replace(memory, at=seen.now, served=served, queue=queue)
    # a host that left takes its total with it: count no negative completions
    rate = max(served - memory.served, 0) / (seen.now - memory.at)
    rate = SMOOTHING * rate + (1 - SMOOTHING) * memory.rate
    return replace(memory, at=seen.now, served=served, queue=queue, rate=rate)


def _remember(settings: Settings, seen: Observed, memory: Memory) -> Memory:
    """Update pressure, activity and per-host clocks from this look."""
    known = memory.at is not None  # a completion rate needs two looks
    memory = _flow(seen, memory)
    # half a request waiting on average: one look with an empty queue is not the end of it
    queued = memory.queue >= 0.5
    pressed = known and queued and wait_estimate(memory) >= settings.wait_seconds
    since = memory.pressure_since if pressed else None
    if pressed and since is None:
        since = seen.now
    active, totals, clocks = {}, {}, {}
    for host in seen.hosts:
        moved = host.requests != memory.requests.get(host.id, host.requests)
        # Idle time counts from when it serves: a host that just joined (after a deploy that
        # may have taken minutes) has had no chance yet.
        new = host.serving and host.id not in memory.serving
        waiting = not host.serving or host.draining
        busy = host.in_flight > 0 or moved or waiting or new or host.id not in memory.last_active
        active[host.id] = seen.now if busy else memory.last_active[host.id]
        totals[host.id] = host.requests
        clocks[host.id] = _clock(host, memory, seen.now)
    return replace(
        memory,
        pressure_since=since,
        last_active=active,
        requests=totals,
        since=clocks,
        serving=[host.id for host in seen.hosts if host.serving],
        refused=seen.refused,
        # a restarted gateway counts from 0 again
        refused_new=seen.refused - memory.refused
        if seen.refused >= memory.refused
        else seen.refused,
    )


def _new_refusals(total: int, before: int) -> int:
    """Refusals since the last look; a restarted gateway counts from 0 again."""
    return total - before if total >= before else total


def _clock(host: Host, memory: Memory, now: float) -> float:
    """Since when the host is booting (not serving) or draining; reset when it serves."""
    if host.serving and not host.draining:
        return now
    return memory.since.get(host.id, now)


def _retire(settings: Settings, seen: Observed, memory: Memory) -> Decision | None:
    for host in seen.hosts:
        if not host.draining or host.stopped:
            continue
        waited = seen.now - memory.since.get(host.id, seen.now)
        if host.in_flight == 0 or waited >= settings.drain_seconds:
            why = "its streams ended" if host.in_flight == 0 else f"drained {waited:.0f} s"
            return Decision(
                "retire", f"{host.name} drained ({why}); {settings.scale_in} it", host.id
            )
    return None


def _replace(settings: Settings, seen: Observed, memory: Memory) -> Decision | None:
    for host in seen.hosts:
        if host.outbid:
            return Decision("replace", f"{host.name} was outbid (stopped by the provider)", host.id)
        booting = seen.now - memory.since.get(host.id, seen.now)
        if host.live and not host.serving and booting >= settings.boot_minutes * 60:
            return Decision(
                "replace",
                f"{host.name} is stuck {host.state} ({booting / 60:.1f} min without serving,"
                f" BOOT_MINUTES={settings.boot_minutes:g})",
                host.id,
            )
    return None


def _join(_settings: Settings, seen: Observed, _memory: Memory) -> Decision | None:
    for host in seen.hosts:
        if host.live and host.ssh_ok and not host.in_gateway:
            return Decision("join", f"{host.name} is running and answers SSH", host.id)
    return None


def _leave(_settings: Settings, seen: Observed, _memory: Memory) -> Decision | None:
    for host in seen.hosts:
        if host.in_gateway and (host.stopped or host.state != "running") and not host.draining:
            return Decision("leave", f"{host.name} is {host.state}", host.id)
    return None


def _live(seen: Observed) -> list[Host]:
    return [host for host in seen.hosts if host.live]


def _add(seen: Observed, reason: str) -> Decision:
    """Start the cheapest stopped (not outbid) host, else rent."""
    stopped = [h for h in seen.hosts if h.stopped and not h.draining]
    if stopped:
        cheapest = min(stopped, key=lambda h: h.dph)
        return Decision("add", f"{reason}; start {cheapest.name}", cheapest.id)
    return Decision("add", f"{reason}; rent one")


def _minimum(settings: Settings, seen: Observed, _memory: Memory) -> Decision | None:
    live = len(_live(seen))
    if live < settings.min_hosts:
        return _add(seen, f"{live} live host(s) < MIN_HOSTS={settings.min_hosts}")
    return None


def _wake(settings: Settings, seen: Observed, memory: Memory) -> Decision | None:
    if _live(seen) or settings.max_hosts < 1:
        return None
    refused = memory.refused_new
    if refused > 0 or seen.waiting > 0:
        return _add(seen, f"no host up and {refused} request(s) refused, {seen.waiting} waiting")
    return None


def _pressure(settings: Settings, seen: Observed, memory: Memory) -> Decision | None:
    if memory.pressure_since is None:
        return None
    sustained = seen.now - memory.pressure_since
    live = _live(seen)
    if sustained < settings.sustain_seconds or len(live) >= settings.max_hosts:
        return None
    if any(not h.serving for h in live):
        return None  # one is on its way
    return _add(
        seen,
        f"requests waited ~{wait_estimate(memory):.1f} s (> {settings.wait_seconds:g} s; now"
        f" {seen.waiting} waiting) for {sustained:.0f} s with {len(live)} host(s)",
    )


def _idle(settings: Settings, seen: Observed, memory: Memory) -> Decision | None:
    live = _live(seen)
    if len(live) <= settings.min_hosts or seen.waiting > 0:
        return None
    idle = [
        (seen.now - memory.last_active.get(h.id, seen.now), h)
        for h in live
        if h.serving and h.in_flight == 0
    ]
    limit = settings.idle_minutes * 60
    ready = [(quiet, h) for quiet, h in idle if quiet >= limit]
    if not ready:
        return None
    quiet, host = max(ready, key=lambda pair: (pair[1].dph, pair[0]))
    return Decision(
        "drain",
        f"{host.name} had no request for {quiet / 60:.1f} min (IDLE_MINUTES="
        f"{settings.idle_minutes:g}), {len(live)} live > MIN_HOSTS={settings.min_hosts}",
        host.id,
    )


def _holding(seen: Observed) -> str:
    live = _live(seen)
    serving = sum(1 for h in live if h.serving)
    booting = [h.name for h in live if not h.serving]
    said = f"{serving} serving, {seen.waiting} waiting"
    return said + (f", booting {', '.join(booting)}" if booting else "")
