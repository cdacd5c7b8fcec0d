"""`fleet up` against the vast.ai double: rent, wait, deploy, check, print; count, errors."""

from __future__ import annotations

import pytest

from fleet.errors import FleetError
from fleet.provider import Wanted
from fleet.up import UpOptions, up
from fleet.vast import VastProvider
from roles.services import ONSTART_COMMAND
from tests.fleet.conftest import Recorder
from vast_double import VastDouble
from vast_double.market import ApiError

WANTED = Wanted(gpu="RTX_4090", max_price=0.40, disk_gb=40, min_vram_gb=7.6)


def options(count: int, **overrides: object) -> UpOptions:
    values: dict[str, object] = {"count": count, "wanted": WANTED, "yes": True, "timeout": 600}
    values.update(overrides)
    return UpOptions(**values)  # type: ignore[arg-type]


def creates(vast: VastDouble) -> list[tuple[str, dict[str, object]]]:
    return [(path, body) for _, path, _, _, body in vast.requests("PUT") if "/asks/" in path]


def test_up_rents_waits_deploys_checks_and_prints_tunnels(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> None:
    ready = up(provider, options(2), steps, env)

    assert [path for path, _ in creates(vast)] == ["/api/v0/asks/8002/", "/api/v0/asks/8001/"]
    _, body = creates(vast)[0]
    assert body["label"] == "llm-selfhost"
    assert body["image"] == "vastai/base-image:cuda-12.4.1-auto"
    assert body["disk"] == 40
    assert body["runtype"] == "ssh_direc ssh_proxy"  # SSH launch mode, direct port
    assert body["onstart"] == ONSTART_COMMAND
    assert body["price"] is None  # on-demand
    ids = [row.id for row in ready]
    assert ids == [7000001, 7000002]
    assert all(row.state == "running" for row in ready)
    hosts = ["vast-7000001", "vast-7000002"]
    assert steps.called("deploy") == [(hosts, {"VAST_LABEL": "llm-selfhost"})]
    assert steps.called("check") == [(hosts, {"VAST_LABEL": "llm-selfhost"})]
    assert steps.called("tunnel") == [(hosts, {"VAST_LABEL": "llm-selfhost"})]
    text = steps.text
    assert "offer 8002 (1x RTX 4090, 25 GB, $0.308/h, Canada, CA, reliability 0.995)" in text
    assert "[    0 s] instance 7000001: loading (Extracting image layers)" in text
    assert "[   10 s] instance 7000001: ready (running, SSH answers)" in text
    assert "instance 7000002: ready (running, SSH answers)" in text
    assert "ssh -N -L 8001:127.0.0.1:8000 vast-7000001" in text


def test_up_asks_first_and_no_rents_nothing(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> None:
    steps.answers = [False]
    with pytest.raises(FleetError, match="Nothing rented: you answered no."):
        up(provider, options(1, yes=False), steps, env)
    assert steps.questions == ["Rent 1 instance(s) at $0.308/h?"]
    assert creates(vast) == []


def test_up_is_idempotent_on_count(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> None:
    up(provider, options(1), steps, env)
    up(provider, options(2), steps, env)
    assert len(creates(vast)) == 2
    up(provider, options(2), steps, env)
    assert len(creates(vast)) == 2  # nothing more
    assert "Label llm-selfhost: 2 instance(s) already" in steps.text
    # every run deployed to the whole (running) fleet
    assert [hosts for hosts, _ in steps.called("deploy")][-1] == ["vast-7000001", "vast-7000002"]


def test_a_taken_offer_moves_on_to_the_next(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> None:
    vast.market.snatched = {8002}
    ready = up(provider, options(1), steps, env)
    assert [path for path, _ in creates(vast)] == ["/api/v0/asks/8002/", "/api/v0/asks/8001/"]
    assert "Offer 8002 was taken meanwhile; trying the next one." in steps.text
    assert [row.id for row in ready] == [7000001]
    assert ready[0].extra["bundle_id"] == 8001


def test_a_lost_create_answer_is_not_rented_twice(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> None:
    market = vast.market
    create = market.create

    def create_then_fail(offer_id: int, body: dict[str, object]) -> dict[str, object]:
        create(offer_id, body)  # vast rented it, but the answer never arrives
        raise ApiError(502, "bad_gateway", "upstream closed the connection")

    market.create = create_then_fail  # type: ignore[method-assign]
    ready = up(provider, options(1), steps, env)
    assert len(creates(vast)) == 1  # no SDK retry, and no second offer rented
    assert [row.id for row in ready] == [7000001]


def test_interruptible_bids(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> None:
    wanted = Wanted(max_price=0.40, disk_gb=40, min_vram_gb=7.6, interruptible=True, bid=0.21)
    up(provider, options(1, wanted=wanted), steps, env)
    ((path, body),) = creates(vast)
    assert (path, body["price"]) == ("/api/v0/asks/8003/", 0.21)
    assert vast.market.instances[0]["dph_base"] == 0.21


def test_a_timeout_destroys_nothing_and_says_what_it_sees(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> None:
    vast.market.boot = ((None, "Creating container"), ("loading", "Pulling image layers"))
    with pytest.raises(FleetError) as raised:
        up(provider, options(1, timeout=300), steps, env)
    message = str(raised.value)
    assert message.startswith(
        "Gave up waiting after 300 s: instance 7000001 is loading"
        " (Pulling image layers). Nothing was destroyed"
    )
    assert "see `vastai logs 7000001`" in message
    assert "it rents nothing more" in message
    assert vast.requests("DELETE") == []
    assert [r["id"] for r in vast.market.instances] == [7000001]
    assert steps.called("deploy") == []


def test_ssh_not_answering_is_reported_at_the_timeout(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> None:
    steps.ssh_up = False
    with pytest.raises(FleetError, match="instance 7000001 is running .*, SSH not answering yet"):
        up(provider, options(1, timeout=120), steps, env)


@pytest.mark.parametrize(
    ("setup", "sentence"),
    [
        (
            lambda market, env: market.ssh_keys.clear(),
            "is not registered with vast.ai, so a new instance would not let you in; register it"
            " with `vastai create ssh-key ",
        ),
        (
            lambda market, env: setattr(market, "credit", 0.10),
            "Insufficient vast.ai credit: $0.10 left, and the chosen offers cost $0.308/h; add"
            " credit at https://cloud.vast.ai/billing/",
        ),
        (
            lambda market, env: env.update(VAST_SSH_KEY="/nonexistent/key"),
            "No SSH public key found (looked at /nonexistent/key.pub); create one with",
        ),
    ],
    ids=["ssh-key-not-registered", "insufficient-credit", "no-local-key"],
)
def test_errors_before_renting_are_sentences(
    provider: VastProvider,
    vast: VastDouble,
    steps: Recorder,
    env: dict[str, str],
    setup: object,
    sentence: str,
) -> None:
    setup(vast.market, env)  # type: ignore[operator]
    with pytest.raises(FleetError) as raised:
        up(provider, options(1), steps, env)
    assert sentence in str(raised.value)
    assert creates(vast) == []


def test_credit_refused_by_the_api_is_a_sentence(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> None:
    market = vast.market

    def refuse(offer_id: int, body: dict[str, object]) -> dict[str, object]:
        raise ApiError(402, "insufficient_credit", "Your account has insufficient credit.")

    market.create = refuse  # type: ignore[method-assign]
    with pytest.raises(FleetError, match="for lack of credit .* add credit at https://cloud"):
        up(provider, options(1), steps, env)


def test_no_offer_is_the_filter_sentence(
    provider: VastProvider, vast: VastDouble, steps: Recorder, env: dict[str, str]
) -> None:
    with pytest.raises(FleetError, match="the filter GPU H100 excluded the most offers"):
        up(provider, options(1, wanted=Wanted(gpu="H100", min_vram_gb=7.6)), steps, env)
    assert creates(vast) == []
