"""Offer selection: our filters through the SDK's search, the VRAM need, the "no offer" sentence."""

from __future__ import annotations

import pytest
from vastai import VastAI

from fleet.errors import FleetError
from fleet.provider import Wanted
from fleet.vast import offers
from fleet.vram import required_gb
from tests.fleet.conftest import load_offers
from vast_double import VastDouble

WANTED = Wanted(gpu="RTX_4090", max_price=0.40, disk_gb=40, min_vram_gb=7.6)


def test_search_keeps_matching_offers_cheapest_first(sdk: VastAI) -> None:
    found = offers.search(sdk, WANTED)
    assert [o["id"] for o in found] == [8002, 8001, 8003]
    # priced for the 40 GB disk: dph_base + 0.15 $/GB/month x 40 GB / 720 h
    assert found[0]["dph_total"] == pytest.approx(0.30 + 0.15 * 40 / 720)


def test_search_sends_our_filters_in_the_sdks_query_shape(sdk: VastAI, vast: VastDouble) -> None:
    offers.search(sdk, WANTED)
    ((_, _, _, _, body),) = vast.requests("POST", "/api/v0/bundles/")
    assert body["gpu_name"] == {"eq": "RTX 4090"}
    assert body["num_gpus"] == {"eq": 1}
    assert body["gpu_ram"] == {"gte": 7600}
    assert body["reliability"] == {"gte": 0.98}
    assert body["direct_port_count"] == {"gte": 1}
    assert body["inet_down"] == {"gte": 200.0}
    assert body["disk_space"] == {"gte": 40}
    assert body["cuda_max_good"] == {"gte": 12.1}
    assert body["dph_total"] == {"lte": 0.40}
    assert body["order"] == [["dph_total", "asc"]]
    assert (body["type"], body["allocated_storage"]) == ("on-demand", 40)
    # the SDK's own defaults ride along
    assert body["rentable"] == {"eq": True} and body["rented"] == {"eq": False}


# Offer -> the filter (by API field) that alone excludes it (tests/fixtures/vast/offers.json).
EXCLUDED_BY = {
    8004: "reliability",
    8005: "direct_port_count",
    8006: "dph_total",
    8007: "gpu_name",
    8008: "cuda_max_good",
    8009: "num_gpus",
    8011: "inet_down",
    8012: "disk_space",
}


@pytest.mark.parametrize("offer_id", EXCLUDED_BY)
def test_each_filter_excludes_its_offer(offer_id: int) -> None:
    (offer,) = [o for o in load_offers() if o["id"] == offer_id]
    offer = {**offer, "dph_total": offer["dph_base"] + 0.15 * 40 / 720}
    failing = [f.field for f in offers.filters(WANTED) if not f.passes(offer)]
    assert failing == [EXCLUDED_BY[offer_id]]


def test_interruptible_offers_are_chosen_by_minimum_bid(sdk: VastAI, vast: VastDouble) -> None:
    wanted = Wanted(max_price=0.40, disk_gb=40, min_vram_gb=7.6, interruptible=True, bid=0.21)
    found = offers.search(sdk, wanted)
    assert [o["id"] for o in found] == [8003, 8001]  # min_bid 0.19, 0.20; 8002 bids 0.24
    ((_, _, _, _, body),) = vast.requests("POST", "/api/v0/bundles/")
    assert body["type"] == "bid"
    assert body["min_bid"] == {"lte": 0.21}
    assert body["order"] == [["min_bid", "asc"]]


def test_no_offer_names_the_filter_that_excluded_most_and_its_cheapest(sdk: VastAI) -> None:
    wanted = Wanted(max_price=0.27, disk_gb=40, min_vram_gb=7.6)
    assert offers.search(sdk, wanted) == []
    sentence = offers.why_none(sdk, wanted)
    # With the 40 GB disk, 6 offers cost more than $0.27/h (GPU name excludes 2, the others 1
    # each); the cheapest of those six is 8011 at 0.28 + 0.0083.
    assert sentence.startswith("No vast.ai offer matched: the filter price <= $0.27/h excluded")
    assert "(6 of 12)" in sentence
    assert "the cheapest it excluded is offer 8011 (1x RTX 4090, 25 GB, $0.288/h, Chile" in sentence
    assert "with dph_total = 0.2883. Loosen that filter" in sentence
    assert sentence.endswith("or try again later.")


def test_no_offer_at_all(sdk: VastAI, vast: VastDouble) -> None:
    vast.market.offers = []
    sentence = offers.why_none(sdk, WANTED)
    assert sentence == (
        "No vast.ai offer matched, and vast.ai lists no rentable on-demand offer at all right now."
    )


@pytest.mark.parametrize(
    ("models", "context", "gb"),
    [
        (["qwen2.5-coder:7b"], 32768, 7.6),  # 4.7 weights + 1.88 KV + 1.0 overhead
        (["qwen2.5-coder:7b", "qwen2.5-coder:1.5b"], 32768, 10.6),
        (["qwen2.5-coder:32b"], 8192, 23.2),
        (["llama3.1:8b"], 32768, 8.4),  # unknown: sized from its name
    ],
)
def test_vram_need(models: list[str], context: int, gb: float) -> None:
    assert required_gb(models, context) == gb


def test_vram_need_unknown_model_says_how_to_override() -> None:
    with pytest.raises(FleetError, match="pass the need yourself with VRAM=<GB>"):
        required_gb(["mystery-model"], 32768)
