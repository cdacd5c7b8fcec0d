"""Which vast.ai offers suit the deploy: the filters, the search, and why nothing matched.

Each filter is one `{field: {op: value}}` clause of the SDK's query (the shape
`vastai.api.query.parse_query` produces) and the same test applied locally, so when the search
finds nothing we can search again without our filters and say which filter excluded the most
offers, and the cheapest offer it excluded.

    wanted = Wanted(gpu="RTX_4090", max_price=0.40, disk_gb=40, min_vram_gb=7.6)
    offers = search(sdk, wanted)          # cheapest first
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vastai import VastAI

from fleet.provider import Wanted
from fleet.vast.client import call

Offer = dict[str, Any]  # an offer row of POST /api/v0/bundles/

_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "gte": lambda a, b: a is not None and a >= b,
    "lte": lambda a, b: a is not None and a <= b,
}


@dataclass(frozen=True)
class Filter:
    """One clause: `field op value`, and how to say it."""

    field: str
    op: str
    value: Any
    says: str

    def passes(self, offer: Mapping[str, Any]) -> bool:
        return _TESTS[self.op](offer.get(self.field), self.value)


def filters(wanted: Wanted) -> list[Filter]:
    """Our filters for `wanted`, in the order they are reported."""
    price = "minimum bid" if wanted.interruptible else "price"
    return [
        Filter("gpu_name", "eq", wanted.gpu_name, f"GPU {wanted.gpu_name}"),
        Filter("num_gpus", "eq", wanted.gpus, f"{wanted.gpus} GPU per instance"),
        Filter(
            "gpu_ram",
            "gte",
            wanted.min_vram_gb * 1000,
            f"VRAM >= {wanted.min_vram_gb:g} GB (the configured models)",
        ),
        Filter(
            "reliability", "gte", wanted.min_reliability, f"reliability >= {wanted.min_reliability}"
        ),
        Filter("direct_port_count", "gte", 1, "a direct SSH port"),
        Filter(
            "inet_down", "gte", wanted.min_inet_down, f"download >= {wanted.min_inet_down:g} Mbit/s"
        ),
        Filter("disk_space", "gte", wanted.disk_gb, f"disk >= {wanted.disk_gb:g} GB"),
        Filter("cuda_max_good", "gte", wanted.min_cuda, f"CUDA >= {wanted.min_cuda} (driver 531+)"),
        Filter(
            "compute_cap",
            "gte",
            wanted.min_compute_cap,
            f"compute capability >= {wanted.min_compute_cap / 100:g}",
        ),
        Filter(wanted.price_field, "lte", wanted.price_cap, f"{price} <= ${wanted.price_cap:g}/h"),
    ]


def query(chosen: Sequence[Filter]) -> dict[str, Any]:
    """The SDK query dict for `chosen` filters (the SDK adds verified/rentable/not rented)."""
    result: dict[str, Any] = {}
    for item in chosen:
        result.setdefault(item.field, {})[item.op] = item.value
    return result


def _search(sdk: VastAI, wanted: Wanted, chosen: Sequence[Filter], limit: int) -> list[Offer]:
    offers = call(
        sdk,
        "searching offers",
        sdk.search_offers,
        query=query(chosen),
        type="bid" if wanted.interruptible else "on-demand",
        order=wanted.price_field,
        limit=limit,
        storage=wanted.disk_gb,
    )
    return sorted(offers, key=lambda offer: float(offer.get(wanted.price_field) or 0))


def search(sdk: VastAI, wanted: Wanted, limit: int = 20) -> list[Offer]:
    """Offers passing every filter, cheapest first (vast's order, re-sorted to be sure)."""
    return [o for o in _search(sdk, wanted, filters(wanted), limit) if passes_all(o, wanted)]


def passes_all(offer: Mapping[str, Any], wanted: Wanted) -> bool:
    return all(item.passes(offer) for item in filters(wanted))


def why_none(sdk: VastAI, wanted: Wanted) -> str:
    """The sentence for an empty search: the filter that excluded the most offers, and the
    cheapest offer it excluded."""
    everything = _search(sdk, wanted, [], limit=1000)
    if not everything:
        return (
            "No vast.ai offer matched, and vast.ai lists no rentable"
            f" {'interruptible' if wanted.interruptible else 'on-demand'} offer at all right now."
        )
    excluded = {item: [o for o in everything if not item.passes(o)] for item in filters(wanted)}
    worst = max(excluded, key=lambda item: len(excluded[item]))
    cheapest = min(excluded[worst], key=lambda o: float(o.get(wanted.price_field) or 0))
    return (
        f"No vast.ai offer matched: the filter {worst.says} excluded the most offers"
        f" ({len(excluded[worst])} of {len(everything)}); the cheapest it excluded is"
        f" {describe(cheapest, wanted)}, with {worst.field} = {_show(cheapest.get(worst.field))}."
        " Loosen that filter (see `python -m fleet up --help`) or try again later."
    )


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def describe(offer: Mapping[str, Any], wanted: Wanted) -> str:
    """`offer 123 (1x RTX 4090, 24 GB, $0.35/h, Norway, reliability 0.99)`."""
    price = float(offer.get(wanted.price_field) or 0)
    vram = float(offer.get("gpu_ram") or 0) / 1000
    return (
        f"offer {offer['id']} ({offer.get('num_gpus')}x {offer.get('gpu_name')}, {vram:.0f} GB,"
        f" ${price:.3f}/h, {offer.get('geolocation') or 'unknown location'}, reliability"
        f" {float(offer.get('reliability') or 0):.3f})"
    )
