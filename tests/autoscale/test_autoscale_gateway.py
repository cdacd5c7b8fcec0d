"""Hosts join and leave a running gateway (fleet/autoscale/pool.py, fleet/admin.py) under load.

Two proxy_app processes, each against its own Ollama double whose answers stream for ~0.4 s,
stand in for two hosts' tunnels. Sessions keep streaming through HAProxy while host-b joins (a
new session starts then, and goes to it: sessions stay on their host) and while host-a drains
(its sessions move to host-b) and leaves; not one request may fail or end early.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devkit.ports import free_port
from fleet.admin import read_load
from fleet.autoscale.pool import Pool
from fleet.haproxy import GatewayConfig
from ollama_double.server import OllamaDouble, Reply
from tests.gateway.conftest import CONTEXT, MODEL, Host, headers, message


@dataclass
class Load:
    """Sessions streaming through the gateway until stopped; every outcome kept."""

    url: str
    sessions: int = 4
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _session(self) -> None:
        session = str(uuid.uuid4())
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                body = message(f"turn of {session}", stream=True)
                with client.stream(
                    "POST", "/v1/messages", json=body, headers=headers(session)
                ) as resp:
                    text = resp.read().decode()
                if resp.status_code == 200 and "message_stop" in text:
                    self.ok += 1
                else:
                    self.failures.append(f"{resp.status_code}: {text[-200:]}")

    def start(self, sessions: int | None = None) -> Load:
        """Start `sessions` more sessions (all of them the first time)."""
        threads = [threading.Thread(target=self._session) for _ in range(sessions or self.sessions)]
        self._threads += threads
        for thread in threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


@pytest.fixture
def hosts() -> Iterator[dict[str, Host]]:
    doubles = [
        OllamaDouble(models=[MODEL], default_num_ctx=CONTEXT, context_lengths={MODEL: CONTEXT})
        for _ in range(2)
    ]
    for double in doubles:
        double.default_reply = Reply(
            content="one two three four five six seven eight", chunk_delay=0.05
        )
    started = {
        name: Host(name, free_port(), double.start())
        for name, double in zip(("host-a", "host-b"), doubles, strict=True)
    }
    for host in started.values():
        host.start()
    yield started
    for host in started.values():
        host.stop()
    for double in doubles:
        double.stop()


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    cfg = GatewayConfig(port=free_port(), stats_port=free_port())
    with Pool(cfg, tmp_path, connect=lambda _name, data: int(data["port"])) as running:
        yield running


def test_autoscale_gateway_with_no_host_answers_529_and_counts_it(pool: Pool) -> None:
    resp = httpx.post(
        f"http://127.0.0.1:{pool.cfg.port}/v1/messages",
        json=message("hi"),
        headers=headers("s-1"),
        timeout=10,
    )
    assert resp.status_code == 529
    assert resp.headers["retry-after"] == "5"
    assert resp.json()["error"]["message"] == "No host of the fleet is up; retry later."
    assert pool.load().refused == 1


def test_autoscale_hosts_join_and_drain_a_running_gateway_with_no_failed_request(
    pool: Pool, hosts: dict[str, Host]
) -> None:
    a, b = hosts["host-a"], hosts["host-b"]
    pool.join("host-a", {"port": a.port})
    load = Load(f"http://127.0.0.1:{pool.cfg.port}").start()
    try:
        time.sleep(1.0)
        started = time.monotonic()
        pool.join("host-b", {"port": b.port})
        joined_in = time.monotonic() - started
        # Sessions stay on their host: the joined host gets new sessions (the least busy host).
        load.start(sessions=1)
        took = time.monotonic()
        while not b.chats:  # its first request, however loaded this machine is
            assert time.monotonic() - took < 30, "host-b took no request after joining"
            time.sleep(0.05)
        pool.drain("host-a")
        time.sleep(0.3)  # requests HAProxy sent before the drain reach the double
        before = len(a.chats)
        time.sleep(1.5)
        assert len(a.chats) == before, "a draining host took new requests"
        waited = time.monotonic()
        while read_load(pool.cfg).hosts["host-a"].in_flight:
            assert time.monotonic() - waited < 10
            time.sleep(0.05)
        pool.leave("host-a")
        time.sleep(1.0)
    finally:
        load.stop()
    print(f"joined in {joined_in:.2f} s; {load.ok} streams, {len(load.failures)} failed")
    assert load.failures == []
    assert load.ok > 20
    assert set(pool.members()) == {"host-b"}
    assert "host-a" not in read_load(pool.cfg).hosts
