"""The gateway's routing, failover and errors, with HAProxy live in front of two proxy_app hosts."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack

import httpx

from ollama_double.server import Reply
from tests.gateway.conftest import REPO, Gateway, headers, message


def test_one_session_stays_on_one_host_and_sessions_spread_evenly(gateway: Gateway) -> None:
    rng = random.Random(7)  # Claude Code's session ids are random UUIDs
    sessions = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(24)]
    for turn in range(2):
        for session in sessions:
            assert gateway.ask(f"{session} turn {turn}", session).status_code == 200
    placement = {s: {gateway.host_of(f"{s} turn {t}") for t in range(2)} for s in sessions}
    assert all(len(hosts) == 1 for hosts in placement.values()), placement
    on_a = sum(hosts == {"host-a"} for hosts in placement.values())
    assert 8 <= on_a <= 16, f"{on_a} of 24 sessions on host-a"


def test_requests_without_a_session_go_to_the_least_busy_host(gateway: Gateway) -> None:
    for host in gateway.hosts.values():
        host.double.script(Reply("x", hang=True, hang_interval=0.1))
    with httpx.Client(base_url=gateway.url, timeout=30) as other, other.stream(
        "POST", "/v1/messages", json=message("long one", stream=True), headers=headers()
    ) as held:
        chunks = held.iter_bytes()  # kept: a dropped iterator closes the response
        next(chunks)  # message_start: the request is on its host
        busy = gateway.host_of("long one")
        idle = next(name for name in gateway.hosts if name != busy)
        gateway.hosts[idle].double.reset()  # its scripted hang is not needed
        for i in range(4):
            assert gateway.ask(f"short {i}").status_code == 200
            assert gateway.host_of(f"short {i}") == idle


def test_a_new_session_goes_to_the_least_busy_host_and_stays_there(gateway: Gateway) -> None:
    for host in gateway.hosts.values():
        host.double.script(Reply("x", hang=True, hang_interval=0.1))
    with httpx.Client(base_url=gateway.url, timeout=30) as other, other.stream(
        "POST", "/v1/messages", json=message("long one", stream=True), headers=headers("busy")
    ) as held:
        chunks = held.iter_bytes()  # kept: a dropped iterator closes the response
        next(chunks)  # message_start: the request is on its host
        busy = gateway.host_of("long one")
        idle = next(name for name in gateway.hosts if name != busy)
        gateway.hosts[idle].double.reset()  # its scripted hang is not needed
        for i in range(4):  # one at a time: the busy host keeps its stream, the other is idle
            assert gateway.ask(f"new {i}", f"new-session-{i}").status_code == 200
            assert gateway.host_of(f"new {i}") == idle
        # Stickiness wins over load: the busy session's next turn stays with its KV cache.
        assert gateway.ask("busy turn 2", "busy").status_code == 200
        assert gateway.host_of("busy turn 2") == busy


def test_sessions_move_when_their_host_stops_and_stay_when_it_returns(
    gateway: Gateway,
) -> None:
    sessions = [f"s{i}" for i in range(12)]
    for session in sessions:
        gateway.ask(f"{session} before", session)
    assert {gateway.host_of(f"{s} before") for s in sessions} == {"host-a", "host-b"}
    victim = gateway.hosts["host-a"]
    victim.stop()
    # Before HAProxy has noticed: a refused connection is retried on the other host.
    for session in sessions:
        assert gateway.ask(f"{session} during", session).status_code == 200
        assert gateway.host_of(f"{session} during") == "host-b"
    detection = gateway.wait_state("host-a", "DOWN")
    for session in sessions:
        assert gateway.ask(f"{session} after", session).status_code == 200
        assert gateway.host_of(f"{session} after") == "host-b"
    victim.start()
    gateway.wait_state("host-a", "UP")
    # Every session stays where it moved (its KV cache is there now) ...
    for session in sessions:
        assert gateway.ask(f"{session} back", session).status_code == 200
        assert gateway.host_of(f"{session} back") == "host-b"
    # ... and new sessions reach the returned host, which has nothing in flight.
    gateway.hosts["host-b"].double.script(Reply("x", hang=True, hang_interval=0.1))
    with httpx.Client(base_url=gateway.url, timeout=30) as other, other.stream(
        "POST", "/v1/messages", json=message("held", stream=True), headers=headers("s0")
    ) as held:
        chunks = held.iter_bytes()  # kept: a dropped iterator closes the response
        next(chunks)  # host-b has a stream in flight (session s0 stays on host-b)
        for i in range(4):
            assert gateway.ask(f"fresh {i}", f"fresh-{i}").status_code == 200
            assert gateway.host_of(f"fresh {i}") == "host-a"
    print(f"host-a DOWN {detection:.2f} s after its proxy stopped")


def test_a_session_whose_host_is_full_moves_to_the_least_busy_host(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(server_maxconn=1, server_maxqueue=1)
    for host in gateway.hosts.values():
        host.double.script(Reply("x", hang=True, hang_interval=0.1))
    results: list[httpx.Response] = []
    with httpx.Client(base_url=gateway.url, timeout=30) as other, other.stream(
        "POST", "/v1/messages", json=message("hold", stream=True), headers=headers("full")
    ) as held:
        chunks = held.iter_bytes()  # kept: a dropped iterator closes the response
        next(chunks)  # its host is full: one request in flight
        home = gateway.host_of("hold")
        idle = next(name for name in gateway.hosts if name != home)
        gateway.hosts[idle].double.reset()  # its scripted hang is not needed
        waiting = threading.Thread(target=lambda: results.append(
            gateway.ask("waits for its host", "full")))
        waiting.start()  # the session's next turn waits in its host's queue
        deadline = time.monotonic() + 10
        while not gateway.status()[home]["queued"] and time.monotonic() < deadline:
            time.sleep(0.02)
        with httpx.Client(base_url=gateway.url, timeout=30) as third:
            moved = third.post("/v1/messages", json=message("moves"), headers=headers("full"))
        assert moved.status_code == 200, moved.text
        assert gateway.host_of("moves") == idle  # the host's queue is full: the session moved
    waiting.join(timeout=30)
    assert results[0].status_code == 200
    assert gateway.host_of("waits for its host") == home


def test_a_large_body_is_retried_on_the_other_host(gateway: Gateway) -> None:
    """Claude Code's bodies pass 200 KB in long sessions; they must fit HAProxy's retry buffer."""
    gateway.ask("probe", "big-session")
    home = gateway.host_of("probe")
    other = next(name for name in gateway.hosts if name != home)
    gateway.hosts[home].stop()
    filler = "x = 1  # a long file read earlier in the session\n" * 6000  # ~300 KB
    body = message("big turn")
    body["messages"] = [
        {"role": "user", "content": filler},
        {"role": "assistant", "content": "read it"},
        {"role": "user", "content": "big turn"},
    ]
    assert len(json.dumps(body)) > 250_000
    reply = gateway.client.post("/v1/messages", json=body, headers=headers("big-session"))
    assert reply.status_code == 200, reply.text
    assert gateway.host_of("big turn") == other


def test_a_stream_cut_by_a_dead_host_never_looks_complete(gateway: Gateway) -> None:
    for host in gateway.hosts.values():
        host.double.script(Reply("partial", hang=True, hang_interval=0.05))
    events: list[str] = []
    error: Exception | None = None
    with gateway.client.stream(
        "POST", "/v1/messages", json=message("doomed", stream=True), headers=headers("doomed")
    ) as resp:
        lines = resp.iter_lines()
        try:
            for line in lines:
                if line.startswith("event: "):
                    events.append(line[7:])
                if events.count("content_block_delta") == 3:
                    gateway.hosts[gateway.host_of("doomed")].stop(signal.SIGKILL)
        except httpx.HTTPError as exc:
            error = exc
    assert "message_stop" not in events
    # HAProxy cannot append an SSE event to a response whose host vanished: the client sees
    # the chunked body end without its last chunk, a protocol error, never a clean end.
    assert isinstance(error, httpx.RemoteProtocolError) or events[-1] == "error", events
    print(f"stream cut by a dead host: {error!r} after {events[-1]}")


def test_no_host_up_is_a_529_overloaded_envelope(gateway: Gateway) -> None:
    for name, host in gateway.hosts.items():
        host.stop()
        gateway.wait_state(name, "DOWN")
    for session in (None, "any-session"):
        reply = gateway.ask("hello", session)
        assert reply.status_code == 529
        assert reply.headers["content-type"] == "application/json"
        assert int(reply.headers["retry-after"]) > 0
        body = reply.json()
        assert body["type"] == "error"
        assert body["error"]["type"] == "overloaded_error"
        assert body["request_id"] == reply.headers["request-id"]


def test_a_full_queue_and_a_queue_timeout_are_529_overloaded(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(server_maxconn=1, max_queue=1, queue_timeout="1s")
    for host in gateway.hosts.values():
        host.double.script(Reply("x", hang=True, hang_interval=0.1))
    readers = []  # kept: a dropped iterator closes its response
    with ExitStack() as held:
        for i in range(2):  # one endless stream per host fills every slot
            client = held.enter_context(httpx.Client(base_url=gateway.url, timeout=30))
            stream = held.enter_context(client.stream(
                "POST", "/v1/messages", json=message(f"hold {i}", stream=True), headers=headers()))
            readers.append(stream.iter_bytes())
            next(readers[-1])
        waiting = held.enter_context(httpx.Client(base_url=gateway.url, timeout=30))
        queued = threading.Thread(target=lambda: results.append(waiting.post(
            "/v1/messages", json=message("queued"), headers=headers())))
        results: list[httpx.Response] = []
        queued.start()
        deadline = time.monotonic() + 10
        while not gateway.queued() and time.monotonic() < deadline:
            time.sleep(0.02)
        full = gateway.ask("no room")  # the queue holds one request: this one is refused
        queued.join(timeout=10)
    for reply in (full, results[0]):
        assert reply.status_code == 529, reply.text
        assert reply.json()["error"]["type"] == "overloaded_error"
        assert reply.headers["retry-after"] == "5"
    assert "queue is full" in full.json()["error"]["message"]


def test_oversized_headers_are_a_431_envelope(gateway: Gateway) -> None:
    reply = gateway.client.get("/health", headers={"x-filler": "a" * 70_000})
    assert reply.status_code == 431
    assert reply.json()["error"]["type"] == "invalid_request_error"


def test_a_malformed_request_gets_no_html_page(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.cfg.port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\x01\r\n\r\n")
        answer = sock.recv(65536)
    assert b"<html" not in answer.lower()


def test_proxy_app_errors_pass_through_unchanged(gateway: Gateway) -> None:
    reply = gateway.client.post("/v1/messages", json=message("hi"), headers={"x-api-key": "bad"})
    assert reply.status_code == 401
    assert reply.json()["error"]["type"] == "authentication_error"


def test_status_prints_one_line_per_host(gateway: Gateway) -> None:
    gateway.hosts["host-b"].stop()
    gateway.wait_state("host-b", "DOWN")
    gateway.ask("counted", "one-session")
    done = subprocess.run(
        [sys.executable, "-m", "fleet.gateway", "status", "--stats-port",
         str(gateway.cfg.stats_port)],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=True,
    )
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["host-a", "UP"], ["host-b", "DOWN"]]
    assert "requests 1 " in lines[0] or "requests 2 " in lines[0]
    assert "L7OK 200" in lines[0] and "L4CON" in lines[1]


def test_prometheus_metrics_on_the_stats_port(gateway: Gateway) -> None:
    text = httpx.get(f"http://127.0.0.1:{gateway.cfg.stats_port}/metrics").text
    assert 'haproxy_server_status{proxy="by_session",server="host-a",state="UP"} 1' in text

