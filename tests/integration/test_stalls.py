"""One client can never stall the others: while one client keeps sending a request that used to
hold the event loop — a large exact count, a prompt that can never fit, many content blocks, a
huge chunked trailer — /health stays fast and an ordinary request keeps its pace.

proxy_app runs in a process of its own (`python -m proxy_app`, as deployed), so the test's
own threads (the clients, the Ollama double) do not share its interpreter lock. Each stalling
request is unique (no memo helps) and sized for CI (a few MiB). The ordinary request is Claude
Code's captured first request (49 KB, counted exactly) answered after 0.03 s of "prefill" (on
a GPU, seconds): the proxy's own part, a few ms, grows under load while a worker thread holds
Python's interpreter lock in turns with the event loop, but a stall of the old kind (0.1-0.6 s
per stalling request here) more than doubles the whole.
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import servers
from ollama_double.server import OllamaDouble, Reply
from tests.conftest import API_KEY

HEADERS = {"x-api-key": API_KEY, "content-type": "application/json"}
FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude_code"
ORDINARY = json.loads((FIXTURES / "first_request.json").read_text()) | {"stream": False}
PREFILL = 0.03
MiB = 1024 * 1024
TAG = b"@@@@@@"  # replaced in each stalling request by its number


def prompt(content: Any, **extra: Any) -> bytes:
    body = {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": content}]}
    return json.dumps({**body, **extra}).encode()


TEXT = "@@@@@@" + "hello world, " * (3 * MiB // 13)
# (path, body, the answer it must get)
STALLS: dict[str, tuple[str, bytes, int]] = {
    # 3 MiB that may fit by its size: rendered and counted exactly (~700,000 tokens)
    "large-exact-count": ("/v1/messages/count_tokens", prompt(TEXT), 200),
    # 4 MiB that can never fit 28,672 tokens (at most 128 bytes a token): refused uncounted
    "never-fits": ("/v1/messages", prompt(TEXT + "hello world, " * (MiB // 13), max_tokens=8), 400),
    # 40,000 content blocks (1 MiB): parsed, translated and counted
    "many-blocks": (
        "/v1/messages/count_tokens",
        prompt([{"type": "text", "text": "@@@@@@"}] + [{"type": "text", "text": "x"}] * 40_000),
        200,
    ),
}


@pytest.fixture
def live(double: OllamaDouble, tmp_path: Path) -> Iterator[servers.Proc]:
    double.default_reply = Reply("ok", first_chunk_delay=PREFILL)
    proc = servers.start_proxy(tmp_path, "proxy_app", double.url, API_KEY)
    yield proc
    proc.stop()


def timed(
    client: httpx.Client, send: Callable[[httpx.Client], httpx.Response], n: int
) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        response = send(client)
        out.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return out


def health(client: httpx.Client) -> httpx.Response:
    return client.get("/health")


def ordinary(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/messages", json=ORDINARY, headers=HEADERS)


class Staller(threading.Thread):
    """One client sending its stalling request back to back until stopped."""

    def __init__(self, send: Callable[[int], int]) -> None:
        super().__init__(daemon=True)
        self.send = send
        self.statuses: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.statuses.append(self.send(len(self.statuses)))

    def __enter__(self) -> Staller:
        self.start()
        time.sleep(0.3)  # the first one is under way
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(timeout=60)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(int(0.99 * len(ordered)), len(ordered) - 1)]


def assert_nobody_else_stalls(url: str, send: Callable[[int], int], expected: int) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        timed(client, ordinary, 3)  # warm: the tool list is counted once
        unloaded = statistics.median(timed(client, ordinary, 15))
        with Staller(send) as stalls:
            health_times = timed(client, health, 200)
            loaded = statistics.median(timed(client, ordinary, 15))
            health_times += timed(client, health, 200)
    assert len(stalls.statuses) >= 2 and set(stalls.statuses) == {expected}
    assert p99(health_times) < 0.100, f"/health p99 {p99(health_times) * 1000:.0f} ms"
    assert loaded <= 2 * unloaded, f"ordinary {unloaded * 1000:.0f} -> {loaded * 1000:.0f} ms"


@pytest.mark.parametrize("case", sorted(STALLS))
def test_a_stalling_request_stalls_nobody_else(live: servers.Proc, case: str) -> None:
    path, body, expected = STALLS[case]

    def send(i: int) -> int:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            unique = body.replace(TAG, b"%06d" % i, 1)
            return client.post(path, content=unique, headers=HEADERS).status_code

    assert_nobody_else_stalls(live.url, send, expected)


def test_a_huge_trailer_stalls_nobody_else(live: servers.Proc) -> None:
    port = int(live.url.rsplit(":", 1)[1])
    head = (
        b"POST /v1/messages HTTP/1.1\r\nhost: proxy\r\ntransfer-encoding: chunked\r\n"
        b"x-api-key: " + API_KEY.encode() + b"\r\n\r\n5\r\nhello\r\n0\r\nx-trailer: "
    )

    def send(_: int) -> int:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(head)
                for _ in range(128):  # 8 MiB, unless refused before
                    sock.sendall(b"a" * 65536)
            data = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    data += chunk
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0

    assert_nobody_else_stalls(live.url, send, 431)
