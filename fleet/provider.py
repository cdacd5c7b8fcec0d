"""The seam between the fleet commands and a GPU marketplace: one protocol, one module per provider.

`fleet up/stop/start/down/status`, the waiting loop and the autoscaler use only `Provider`, the
`Instance` and `Offer` records and the errors in fleet/errors.py; vast.ai (fleet/vast/,
through the official `vastai` SDK) is the one implementation. A second provider is a module
with a class of these methods that maps its instances to `Instance` and its offers to `Offer`.

    provider = fleet.vast.from_env(os.environ)
    for instance in provider.list_instances("llm-selfhost"):
        print(instance.name, instance.state, instance.dph)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Wanted:
    """What a rental asks for; the defaults are docs/vast.md's (`make up`)."""

    gpu: str = "RTX_4090"
    max_price: float = 0.40  # $/h, disk included
    disk_gb: float = 40.0
    min_vram_gb: float = 8.0
    gpus: int = 1
    interruptible: bool = False
    bid: float | None = None  # $/h for interruptible; default max_price
    min_reliability: float = 0.98
    min_inet_down: float = 200.0  # Mbit/s: model pulls are GBs
    min_cuda: float = 12.1  # Ollama's CUDA 12 runners need NVIDIA driver >= 531 (CUDA 12.1)
    min_compute_cap: int = 500  # Ollama: compute capability 5.0 or newer

    @property
    def gpu_name(self) -> str:
        """vast's spelling: `RTX_4090` on the command line is `RTX 4090` in the API."""
        return self.gpu.replace("_", " ")

    @property
    def price_field(self) -> str:
        """Interruptible offers are chosen by their minimum bid, on-demand by dph_total."""
        return "min_bid" if self.interruptible else "dph_total"

    @property
    def price_cap(self) -> float:
        return self.bid if self.interruptible and self.bid is not None else self.max_price


@dataclass(frozen=True)
class Instance:
    """One rented machine as the fleet sees it, whatever the provider."""

    id: int
    name: str  # the inventory's host name (`vast-<id>`)
    label: str
    state: str  # provisioning, loading, running, stopped, exited, offline, …
    stopped: bool  # we asked it to stop
    interrupted: bool = False  # interruptible, stopped by the provider for a higher bid
    gpu: str = "-"  # "1x RTX 4090"
    dph: float = 0.0  # $/h while running, disk included
    storage_dph: float = 0.0  # the disk's $/h, billed while stopped too
    interruptible: bool = False
    status_msg: str = ""
    uptime_mins: float | None = None  # the current run
    started_at: float | None = None  # epoch seconds of the rental
    endpoint: tuple[str, int] | None = None  # SSH (host, port), once known
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running" and not self.stopped and not self.interrupted

    @property
    def billed_dph(self) -> float:
        """What it costs per hour right now: the whole price running, the disk otherwise."""
        return self.storage_dph if self.stopped or self.interrupted else self.dph


@dataclass(frozen=True)
class Offer:
    """A machine that can be rented now, cheapest first in `Provider.offers`."""

    id: int
    dph: float  # $/h as it would be billed (the bid for an interruptible rental)
    text: str  # `offer 123 (1x RTX 4090, 24 GB, $0.35/h, Norway, reliability 0.99)`


@dataclass(frozen=True)
class Rental:
    """What every rental of the fleet gets."""

    label: str
    image: str
    disk_gb: float
    onstart: str
    bid: float | None = None  # $/h: interruptible at this bid; None: on-demand


class Provider(Protocol):
    """The lifecycle the fleet needs from a GPU marketplace."""

    name: str  # "vast.ai", said in sentences

    def list_instances(self, label: str) -> list[Instance]:
        """Every instance carrying `label`, oldest first, in any state."""
        ...

    def offers(self, wanted: Wanted, limit: int) -> list[Offer]:
        """Offers passing every filter of `wanted`, cheapest first."""
        ...

    def why_no_offer(self, wanted: Wanted) -> str:
        """A sentence for an empty `offers`: which filter excluded the most."""
        ...

    def check_can_rent(self, env: Mapping[str, str], dph: float) -> None:
        """Raise FleetError unless a new instance would let us in and an hour is paid for."""
        ...

    def create(self, offer: Offer, rental: Rental) -> int:
        """Rent `offer` (one attempt); the new id. OfferTakenError when it is gone; ApiError
        when the answer is unclear (the caller lists before renting again)."""
        ...

    def start(self, instance_id: int) -> None: ...

    def stop(self, instance_id: int) -> None: ...

    def destroy(self, instance_id: int) -> None: ...

    def price(self, instance: Instance) -> float:
        """$/h billed for `instance` now."""
        ...


def by_id(instances: Sequence[Instance]) -> dict[int, Instance]:
    return {instance.id: instance for instance in instances}
