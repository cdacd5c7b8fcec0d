"""Protocol limits at the socket level: huge heads, endless bodies, slow and idle clients.

Each test talks raw HTTP/1.1 over sockets to proxy_app under uvicorn, with the limits set low
so the counts and times stay small for CI, and checks the answer's status and that /health
keeps answering meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ollama_double.server import OllamaDouble, Reply
from tests.conftest import API_KEY, LiveProxy

pytestmark = pytest.mark.both_engines  # tests/conftest.py: the double and llama-server

HEAD = (
    "POST /v1/messages HTTP/1.1\r\nhost: proxy\r\ncontent-type: application/json\r\n"
    f"x-api-key: {API_KEY}\r\n"
).encode()
BODY = json.dumps(
    {"model": "claude-sonnet-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
).encode()


def connect(proxy: LiveProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.settings.port), timeout=10)
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response until the server closes: status, headers, body."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def push(sock: socket.socket, data: bytes) -> bool:
    """Send, reporting False once the server has closed its side."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def assert_health(proxy: LiveProxy) -> None:
    response = httpx.get(proxy.url + "/health", timeout=2)
    assert response.status_code == 200


def assert_envelope(body: bytes, kind: str, *words: str) -> None:
    error = json.loads(body)
    assert error["type"] == "error" and error["error"]["type"] == kind
    for word in words:
        assert word in error["error"]["message"]


@pytest.mark.parametrize("size", [70_000, 8 * 1024 * 1024])
def test_huge_header_is_431_whatever_its_size(make_proxy: Any, size: int) -> None:
    proxy = make_proxy(max_header_bytes=65536)
    with connect(proxy) as sock:
        sent = 0
        push(sock, HEAD + b"x-junk: ")
        while sent < size and push(sock, b"a" * 65536):
            sent += 65536
            if sent == 1 << 20:
                assert_health(proxy)
        status, headers, body = answer(sock)
    assert status == 431 and headers["connection"] == "close"
    assert_envelope(body, "invalid_request_error", "65536-byte limit")
    assert_health(proxy)
    metrics = httpx.get(proxy.url + "/metrics").text
    assert 'proxy_refused_total{reason="header_too_large"} 1' in metrics


def test_header_just_below_the_limit_is_served(make_proxy: Any) -> None:
    proxy = make_proxy(max_header_bytes=65536)
    response = httpx.post(
        proxy.url + "/v1/messages",
        content=BODY,
        headers={"x-api-key": API_KEY, "x-junk": "a" * 60000},
    )
    assert response.status_code == 200, response.text


def test_endless_chunked_body_is_413_once_past_the_limit(make_proxy: Any) -> None:
    proxy = make_proxy(max_body_bytes=65536)
    with connect(proxy) as sock:
        push(sock, HEAD + b"transfer-encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (8192, b"a" * 8192)
        sent = 0
        while push(sock, chunk) and sent < 64 * 1024 * 1024:
            sent += 8192
        status, headers, body = answer(sock)
    assert sent < 4 * 1024 * 1024  # refused near the limit, not after reading everything
    assert status == 413 and headers["connection"] == "close"
    assert_envelope(body, "request_too_large", "65536-byte limit")
    assert_health(proxy)


def test_declared_oversize_body_is_413_before_it_is_sent(make_proxy: Any) -> None:
    proxy = make_proxy(max_body_bytes=65536)
    with connect(proxy) as sock:
        push(sock, HEAD + b"content-length: 1073741824\r\n\r\n")
        status, _, body = answer(sock)
    assert status == 413
    assert_envelope(body, "request_too_large")


@pytest.mark.parametrize("stage", ["headers", "body"])
def test_slow_request_is_408_after_the_client_timeout(make_proxy: Any, stage: str) -> None:
    proxy = make_proxy(client_timeout=0.5)
    with connect(proxy) as sock:
        if stage == "headers":
            push(sock, HEAD[:20])
        else:
            push(sock, HEAD + b"content-length: %d\r\n\r\n" % len(BODY) + BODY[:10])
        for _ in range(3):  # trickle, as a slow client would
            time.sleep(0.1)
            push(sock, b"x" if stage == "body" else b"")
        status, _, body = answer(sock)
    assert status == 408
    assert_envelope(body, "timeout_error", "0.5 s")
    assert proxy.app.state.metrics.refused["incomplete_request"] == 1
    assert_health(proxy)


def test_silent_connection_is_closed_after_the_idle_timeout(make_proxy: Any) -> None:
    proxy = make_proxy(idle_timeout=0.3)
    with connect(proxy) as sock:
        assert sock.recv(1) == b""  # closed by the server, nothing sent


def test_keep_alive_connection_is_closed_when_idle(make_proxy: Any) -> None:
    proxy = make_proxy(idle_timeout=0.3)
    with connect(proxy) as sock:
        push(sock, b"GET /health HTTP/1.1\r\nhost: proxy\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")


@contextlib.contextmanager
def idle_connections(proxy: LiveProxy, count: int, partial: bool) -> Iterator[list[socket.socket]]:
    socks = [connect(proxy) for _ in range(count)]
    try:
        for sock in socks:
            if partial:
                push(sock, HEAD[:30])  # a slowloris head
        yield socks
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("partial", [False, True], ids=["idle", "slow-heads"])
def test_connection_flood_keeps_health_served(make_proxy: Any, partial: bool) -> None:
    proxy = make_proxy(max_connections=32)
    with idle_connections(proxy, 96, partial) as socks:
        for _ in range(5):
            assert_health(proxy)
        closed: set[socket.socket] = set()
        deadline = time.monotonic() + 5
        while len(closed) < 64 and time.monotonic() < deadline:  # the longest-idle were evicted
            readable, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.1)
            for sock in readable:
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(1) == b""  # closed without an answer
                closed.add(sock)
        assert len(closed) >= 64


def test_connections_all_busy_get_529(make_proxy: Any, double: OllamaDouble) -> None:
    proxy = make_proxy(max_connections=16)
    double.script(*[Reply("busy", hang=True) for _ in range(16)])
    body = json.loads(BODY) | {"stream": True}
    clients = [httpx.Client(base_url=proxy.url, timeout=10) for _ in range(16)]
    with contextlib.ExitStack() as stack:
        for client in clients:
            stack.enter_context(client)
            response = stack.enter_context(
                client.stream("POST", "/v1/messages", json=body, headers={"x-api-key": API_KEY})
            )
            assert response.status_code == 200
        refused = httpx.get(proxy.url + "/health", timeout=2)
        assert refused.status_code == 529
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "overloaded_error"
        assert proxy.app.state.metrics.refused["connection_cap"] == 1
    deadline = time.monotonic() + 5  # the streams' connections close in the background
    while httpx.get(proxy.url + "/health", timeout=2).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def chunked(body: bytes, size: int) -> bytes:
    """`body` as chunks of `size` bytes, without the terminal chunk."""
    return b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    )


def test_trailers_count_against_the_header_limit(make_proxy: Any) -> None:
    proxy = make_proxy(max_header_bytes=65536)
    with connect(proxy) as sock:
        push(sock, HEAD + b"transfer-encoding: chunked\r\n\r\n" + chunked(BODY, 64) + b"0\r\n")
        push(sock, b"x-trailer: ")
        sent = 0
        while sent < 64 * 1024 * 1024 and push(sock, b"a" * 65536):
            sent += 65536
        status, headers, body = answer(sock)
    assert sent < 4 * 1024 * 1024  # refused near the limit (the rest is socket buffers)
    assert status == 431 and headers["connection"] == "close"
    assert_envelope(body, "invalid_request_error", "trailers", "65536-byte limit")
    assert proxy.app.state.metrics.refused["header_too_large"] == 1
    assert_health(proxy)


@pytest.mark.parametrize("chunk", [1, 4096], ids=["one-byte-chunks", "4k-chunks"])
def test_chunked_body_with_small_trailers_is_served(make_proxy: Any, chunk: int) -> None:
    """Framing is not trailers: a body of one-byte chunks has 6 bytes of framing per byte."""
    proxy = make_proxy(max_header_bytes=1024)
    padded = json.dumps({**json.loads(BODY), "metadata": {"pad": "p" * 4000}}).encode()
    with connect(proxy) as sock:
        head = HEAD + b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        push(sock, head + chunked(padded, chunk) + b"0\r\nx-checksum: abc\r\n\r\n")
        status, _, body = answer(sock)
    assert status == 200, body


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/9.9\r\nhost: proxy\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nhost: proxy\r\ncontent-length: 5\r\n"
        b"transfer-encoding: chunked\r\n\r\nhello",
        b"POST /v1/messages HTTP/1.1\r\nhost: proxy\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"GET /health HTTP/1.1\r\nbad header\r\n\r\n",
    ],
    ids=["garbage", "version", "length-and-chunked", "bad-chunk-size", "header-without-colon"],
)
def test_malformed_http_gets_the_error_envelope(make_proxy: Any, raw: bytes) -> None:
    proxy = make_proxy()
    with connect(proxy) as sock:
        push(sock, raw)
        status, headers, body = answer(sock)
    assert status == 400 and headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert_envelope(body, "invalid_request_error", "not valid HTTP/1.1")
    assert proxy.app.state.metrics.refused["malformed_request"] == 1
    assert_health(proxy)


def test_websocket_upgrade_is_answered_as_plain_http(make_proxy: Any) -> None:
    proxy = make_proxy()
    with connect(proxy) as sock:
        push(
            sock,
            b"GET /v1/messages HTTP/1.1\r\nhost: proxy\r\nconnection: Upgrade\r\n"
            b"upgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"sec-websocket-version: 13\r\n\r\n",
        )
        sock.settimeout(5)
        data = sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 4") and b"application/json" in head
    assert json.loads(body)["type"] == "error"
