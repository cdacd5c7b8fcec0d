"""The vast.ai double through the real SDK: the instance life and the hooks a sandbox plugs in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
from vastai import VastAI

from tests.fleet.conftest import load_offers
from vast_double import Market, VastDouble

KEY = "double-key"
PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDoubleDoubleDoubleDoubleDoubleDoubleDouble me@laptop"
ROOT = Path(__file__).resolve().parents[2]
OFFERS = ROOT / "tests" / "fixtures" / "vast" / "offers.json"


class RecordingHooks:
    """Hands out loopback endpoints, as a sandbox fleet would, and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, Any]] = []

    def on_create(self, row: Mapping[str, Any], ssh_keys: Sequence[str]) -> Mapping[str, Any]:
        self.calls.append(("create", row["id"], (row["label"], list(ssh_keys))))
        return {
            "public_ipaddr": "127.0.0.1",
            "ports": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2201"}]},
        }

    def on_stop(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls.append(("stop", row["id"], row["actual_status"]))
        return {}

    def on_start(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls.append(("start", row["id"], row["actual_status"]))
        return {"ports": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2202"}]}}

    def on_destroy(self, row: Mapping[str, Any]) -> None:
        self.calls.append(("destroy", row["id"], None))


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
def api(hooks: RecordingHooks) -> Iterator[VastAI]:
    market = Market(offers=load_offers(), hooks=hooks, clock=lambda: 1000.0, ssh_keys=[PUBLIC])
    with VastDouble(market, api_key=KEY, page_size=1) as double:
        yield VastAI(api_key=KEY, server_url=double.url)


def statuses(api: VastAI) -> list[tuple[int, Any]]:
    return [(row["id"], row["actual_status"]) for row in api.show_instances()]


def test_instance_life_and_hooks(api: VastAI, hooks: RecordingHooks) -> None:
    answer = api.create_instance(
        8001,
        image="img",
        disk=40,
        label="a",
        ssh=True,
        direct=True,
        onstart_cmd="echo hi",
        env="-e A=1 -p 8000:8000",
    )
    assert answer == {"success": True, "new_contract": 7000001}
    api.create_instance(8002, image="img", disk=40, label="b")
    # each listing moves booting instances one step: provisioning -> loading -> running
    assert statuses(api) == [(7000001, "loading"), (7000002, "loading")]
    statuses(api)
    assert statuses(api) == [(7000001, "running"), (7000002, "running")]
    row = api.show_instance(7000001)
    assert row["ports"]["22/tcp"][0]["HostPort"] == "2201"
    assert (row["label"], row["image_runtype"], row["onstart"]) == (
        "a",
        "ssh_direc ssh_proxy",
        "echo hi",
    )
    assert row["extra_env"] == {"A": "1"}  # the SDK turns the pairs into a dict
    assert row["dph_total"] == pytest.approx(0.35 + 0.15 * 40 / 720)

    api.label_instance(7000002, "renamed")
    api.stop_instance(7000001)
    assert statuses(api)[0] == (7000001, "stopped")
    api.start_instance(7000001)
    assert api.show_instance(7000001)["ports"]["22/tcp"][0]["HostPort"] == "2202"
    statuses(api)
    assert statuses(api)[0] == (7000001, "running")
    api.destroy_instance(7000001)
    assert [(r["id"], r["label"]) for r in api.show_instances()] == [(7000002, "renamed")]
    assert hooks.calls == [
        ("create", 7000001, ("a", [PUBLIC])),
        ("create", 7000002, ("b", [PUBLIC])),
        ("stop", 7000001, "stopped"),
        ("start", 7000001, "loading"),
        ("destroy", 7000001, None),
    ]


def test_a_rented_offer_leaves_the_search_and_cannot_be_rented_again(api: VastAI) -> None:
    api.create_instance(8001, image="img", disk=40)
    assert 8001 not in [o["id"] for o in api.search_offers(query={}, limit=100)]
    with pytest.raises(requests.HTTPError) as raised:
        api.create_instance(8001, image="img", disk=40)
    assert raised.value.response.json()["error"] == "no_such_ask"


def test_account_endpoints(api: VastAI) -> None:
    assert api.show_user()["credit"] == 25.0
    api.create_ssh_key("ssh-ed25519 AAAA me")
    assert [k["public_key"] for k in api.show_ssh_keys()] == [PUBLIC, "ssh-ed25519 AAAA me"]


def test_the_double_as_its_own_process(tmp_path: Path) -> None:
    key_file = tmp_path / "id.pub"
    key_file.write_text("ssh-ed25519 AAAA me\n")
    argv = [
        sys.executable,
        "-m",
        "vast_double",
        "--offers",
        str(OFFERS),
        "--api-key",
        KEY,
        "--ssh-key",
        str(key_file),
    ]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().removeprefix("VAST_URL=")
        api = VastAI(api_key=KEY, server_url=url)
        assert len(api.search_offers(query={}, limit=100)) == 12
        assert [k["public_key"] for k in api.show_ssh_keys()] == ["ssh-ed25519 AAAA me"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
