"""proxy_app.cache against a real TLS-only redis-server (fixtures from devkit/redis_tls.py)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from devkit.redis_tls import RedisTLSCerts, RedisTLSServer
from proxy_app.cache.store import KEY_PREFIX, ResponseCache
from proxy_app.config import Settings

pytestmark = pytest.mark.anyio

DIGEST = "sha256:" + "ab" * 32


def base_upstream() -> dict[str, Any]:
    return {
        "model": "qwen2.5-coder:7b",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write hello world in Python."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "read_file",
                    "description": "Read a file",
                    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
                },
            }
        ],
        "options": {
            "num_predict": 1024,
            "temperature": 0,
            "top_p": 0.9,
            "top_k": 40,
            "stop": ["</done>"],
            "num_ctx": 32768,
        },
        "think": False,
        "tool_choice": "auto",
        "stream": True,
        "keep_alive": "30m",
    }


def message(stop_reason: Any = "end_turn", text: str = "print('hello world')") -> dict[str, Any]:
    msg: dict[str, Any] = {
        "id": "msg_" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 7},
    }
    if stop_reason == "<missing>":
        del msg["stop_reason"]
    return msg


def settings_for(server: RedisTLSServer | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {}
    if server is not None:
        # A loaded machine can take longer than the 0.25 s default for a TLS handshake; these
        # tests check behaviour, not latency (the timeout tests set their own).
        values = {
            "redis_url": server.url,
            "redis_ca_file": str(server.certs.ca_file),
            "redis_timeout": 2.0,
        }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def open_cache(settings: Settings, **kwargs: Any) -> AsyncIterator[ResponseCache]:
    cache = ResponseCache(settings, **kwargs)
    try:
        yield cache
    finally:
        await cache.aclose()


def unique_key() -> str:
    return "sk-test-" + secrets.token_hex(8)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------------- basics


async def test_miss_then_hit(redis_tls_server: RedisTLSServer) -> None:
    async with open_cache(settings_for(redis_tls_server)) as cache:
        assert cache.enabled
        key = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
        assert await cache.get(key) is None
        assert (cache.hits, cache.misses) == (0, 1)
        msg = message()
        await cache.put(key, msg)
        assert cache.bytes_stored > 0
        assert await cache.get(key) == msg
        assert (cache.hits, cache.misses, cache.store_errors) == (1, 1, 0)
        assert await cache.health() == {"status": "ok"}


async def test_ttl_is_set(redis_tls_server: RedisTLSServer) -> None:
    async with open_cache(settings_for(redis_tls_server, cache_ttl=1234)) as cache:
        key = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
        await cache.put(key, message())
    with redis_tls_server.client() as admin:
        ttl = admin.ttl(key)
    assert 1230 <= ttl <= 1234


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(upstream: dict[str, Any]) -> None:
        target: Any = upstream
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


KEY_INGREDIENTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "model": _set(("model",), "qwen2.5-coder:1.5b"),
    "system": _set(("messages", 0, "content"), "You are terse."),
    "message": _set(("messages", 1, "content"), "Write hello world in Go."),
    "extra_message": lambda u: u["messages"].append({"role": "assistant", "content": "ok"}),
    "tools": _set(("tools", 0, "function", "name"), "write_file"),
    "no_tools": lambda u: u.pop("tools"),
    "tool_choice": _set(("tool_choice",), "required"),
    "think": _set(("think",), True),
    "temperature": _set(("options", "temperature"), 0.7),
    "top_p": _set(("options", "top_p"), 0.5),
    "top_k": _set(("options", "top_k"), 10),
    "num_predict": _set(("options", "num_predict"), 2048),
    "stop": _set(("options", "stop"), ["</end>"]),
    "num_ctx": _set(("options", "num_ctx"), 65536),
}


@pytest.mark.parametrize("ingredient", sorted(KEY_INGREDIENTS))
async def test_each_ingredient_changes_the_key(ingredient: str) -> None:
    cache = ResponseCache(settings_for(None))
    before = cache.key(api_key="k", model_digest=DIGEST, upstream=base_upstream())
    changed = base_upstream()
    KEY_INGREDIENTS[ingredient](changed)
    assert cache.key(api_key="k", model_digest=DIGEST, upstream=changed) != before


async def test_digest_changes_the_key() -> None:
    cache = ResponseCache(settings_for(None))
    up = base_upstream()
    assert cache.key(api_key="k", model_digest=DIGEST, upstream=up) != cache.key(
        api_key="k", model_digest="sha256:" + "cd" * 32, upstream=up
    )


async def test_non_ingredients_do_not_change_the_key() -> None:
    cache = ResponseCache(settings_for(None))
    before = cache.key(api_key="k", model_digest=DIGEST, upstream=base_upstream())
    for field, value in (("stream", False), ("keep_alive", "5m")):
        changed = base_upstream()
        changed[field] = value
        assert cache.key(api_key="k", model_digest=DIGEST, upstream=changed) == before, field
    no_stream = base_upstream()
    del no_stream["stream"], no_stream["keep_alive"]
    assert cache.key(api_key="k", model_digest=DIGEST, upstream=no_stream) == before
    reordered = dict(reversed(list(base_upstream().items())))
    reordered["options"] = dict(reversed(list(reordered["options"].items())))
    assert cache.key(api_key="k", model_digest=DIGEST, upstream=reordered) == before


async def test_namespaces_per_api_key_and_shared() -> None:
    private = ResponseCache(settings_for(None))
    up = base_upstream()
    key_a = private.key(api_key="sk-alpha-secret", model_digest=DIGEST, upstream=up)
    key_b = private.key(api_key="sk-beta-secret", model_digest=DIGEST, upstream=up)
    assert key_a != key_b
    ns = hashlib.sha256(b"sk-alpha-secret").hexdigest()[:16]
    assert re.fullmatch(rf"{KEY_PREFIX}:{ns}:[0-9a-f]{{64}}", key_a)
    assert KEY_PREFIX == "llmsh:v1"
    assert "secret" not in key_a

    shared = ResponseCache(settings_for(None, cache_shared=True))
    shared_a = shared.key(api_key="sk-alpha-secret", model_digest=DIGEST, upstream=up)
    shared_b = shared.key(api_key="sk-beta-secret", model_digest=DIGEST, upstream=up)
    assert shared_a == shared_b
    assert shared_a.startswith(f"{KEY_PREFIX}:shared:")


async def test_per_key_namespaces_isolate_entries(redis_tls_server: RedisTLSServer) -> None:
    async with open_cache(settings_for(redis_tls_server)) as cache:
        up = base_upstream()
        key_a = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=up)
        key_b = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=up)
        await cache.put(key_a, message())
        assert await cache.get(key_a) is not None
        assert await cache.get(key_b) is None


@pytest.mark.parametrize("stop_reason", [None, "error", "<missing>", "pause_turn", "refusal"])
async def test_incomplete_messages_are_not_stored(
    redis_tls_server: RedisTLSServer, stop_reason: Any
) -> None:
    async with open_cache(settings_for(redis_tls_server)) as cache:
        key = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
        await cache.put(key, message(stop_reason))
        assert cache.bytes_stored == 0
        assert await cache.get(key) is None


async def test_error_object_is_not_stored(redis_tls_server: RedisTLSServer) -> None:
    async with open_cache(settings_for(redis_tls_server)) as cache:
        key = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
        error = {"type": "error", "error": {"type": "api_error", "message": "boom"}}
        await cache.put(key, error)
        assert await cache.get(key) is None


@pytest.mark.parametrize("stop_reason", ["end_turn", "tool_use", "stop_sequence", "max_tokens"])
async def test_complete_messages_are_stored(
    redis_tls_server: RedisTLSServer, stop_reason: str
) -> None:
    async with open_cache(settings_for(redis_tls_server)) as cache:
        key = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
        msg = message(stop_reason)
        await cache.put(key, msg)
        assert await cache.get(key) == msg


async def test_non_ascii_and_corrupt_entries(redis_tls_server: RedisTLSServer) -> None:
    async with open_cache(settings_for(redis_tls_server)) as cache:
        key = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
        msg = message(text="héllo — 世界 \U0001f600 \ud800")
        await cache.put(key, msg)
        assert await cache.get(key) == msg
        with redis_tls_server.client() as admin:
            admin.set(key, b"\xff not json")
        assert await cache.get(key) is None
        with redis_tls_server.client() as admin:
            admin.set(key, b"[1, 2]")
        assert await cache.get(key) is None


# ---------------------------------------------------------------------------- modes


async def test_modes_and_cacheable_request() -> None:
    det = ResponseCache(
        settings_for(None, redis_url="rediss://127.0.0.1:1/0", cache_mode="deterministic")
    )
    greedy = base_upstream()
    assert det.cacheable_request(greedy)
    greedy["options"]["temperature"] = 0.0
    assert det.cacheable_request(greedy)
    sampled = base_upstream()
    sampled["options"]["temperature"] = 0.7
    assert not det.cacheable_request(sampled)
    missing = base_upstream()
    del missing["options"]["temperature"]
    assert not det.cacheable_request(missing)
    no_options = base_upstream()
    del no_options["options"]
    assert not det.cacheable_request(no_options)
    flag = base_upstream()
    flag["options"]["temperature"] = False
    assert not det.cacheable_request(flag)

    everything = ResponseCache(settings_for(None, redis_url="rediss://127.0.0.1:1/0"))
    assert everything.cacheable_request(sampled)

    off = ResponseCache(settings_for(None, redis_url="rediss://127.0.0.1:1/0", cache_mode="off"))
    assert not off.enabled
    assert not off.cacheable_request(greedy)
    assert await off.health() == {"status": "disabled"}
    for cache in (det, everything, off):
        await cache.aclose()


async def test_disabled_without_url() -> None:
    async with open_cache(settings_for(None)) as cache:
        assert not cache.enabled
        assert not cache.cacheable_request(base_upstream())
        key = cache.key(api_key="k", model_digest=DIGEST, upstream=base_upstream())
        assert await cache.get(key) is None
        await cache.put(key, message())
        assert await cache.health() == {"status": "disabled"}
        assert cache.stats()["bytes_stored"] == 0
        cache.record_bypass()
        assert cache.bypasses == 1


async def test_bad_url_does_not_raise() -> None:
    async with open_cache(settings_for(None, redis_url="rediss://127.0.0.1:notaport/0")) as c:
        assert await c.get("x") is None
        await c.put("x", message())
        health = await c.health()
        assert health["status"] == "error"
        assert "redis_url" in health["error"]


# ---------------------------------------------------------------------------- single-flight


async def test_run_once_collapses_concurrent_identical_requests() -> None:
    cache = ResponseCache(settings_for(None))
    calls = 0
    gate = asyncio.Event()
    result = message()

    async def produce() -> dict[str, Any] | None:
        nonlocal calls
        calls += 1
        await gate.wait()
        return result

    tasks = [asyncio.create_task(cache.run_once("k1", produce)) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert cache.in_flight() == 1
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert calls == 1
    assert all(r == result for r in results)
    assert results[0] is result  # the leader gets its own object, followers get copies
    assert len({id(r) for r in results}) == 5
    assert (cache.flights.leaders, cache.flights.followers) == (1, 4)
    assert cache.in_flight() == 0


async def test_run_once_different_keys_run_separately() -> None:
    cache = ResponseCache(settings_for(None))
    calls: list[str] = []

    async def produce(name: str) -> dict[str, Any]:
        calls.append(name)
        await asyncio.sleep(0.01)
        return message()

    await asyncio.gather(
        cache.run_once("a", lambda: produce("a")), cache.run_once("b", lambda: produce("b"))
    )
    assert sorted(calls) == ["a", "b"]


async def test_run_once_leader_failure_followers_rerun() -> None:
    cache = ResponseCache(settings_for(None))
    calls = 0
    gate = asyncio.Event()

    async def produce() -> dict[str, Any] | None:
        nonlocal calls
        calls += 1
        me = calls
        if me == 1:
            await gate.wait()
            raise RuntimeError("upstream died")
        return message(text=f"rerun {me}")

    tasks = [asyncio.create_task(cache.run_once("k", produce)) for _ in range(4)]
    await asyncio.sleep(0.01)
    gate.set()
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 2)
    assert isinstance(done[0], RuntimeError)
    assert all(isinstance(r, dict) for r in done[1:])
    assert calls == 4
    assert cache.in_flight() == 0


async def test_run_once_uncacheable_result_followers_rerun() -> None:
    cache = ResponseCache(settings_for(None))
    calls = 0
    gate = asyncio.Event()

    async def produce() -> dict[str, Any] | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await gate.wait()
            return None
        return message()

    tasks = [asyncio.create_task(cache.run_once("k", produce)) for _ in range(3)]
    await asyncio.sleep(0.01)
    gate.set()
    done = await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert done[0] is None and all(r is not None for r in done[1:])
    assert calls == 3


async def test_run_once_leader_cancelled_followers_keep_its_generation() -> None:
    cache = ResponseCache(settings_for(None))
    calls = 0
    gate = asyncio.Event()

    async def produce() -> dict[str, Any] | None:
        nonlocal calls
        calls += 1
        await gate.wait()
        return message()

    leader = asyncio.create_task(cache.run_once("k", produce))
    await asyncio.sleep(0.01)
    followers = [asyncio.create_task(cache.run_once("k", produce)) for _ in range(3)]
    await asyncio.sleep(0.01)
    leader.cancel()
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*followers), 2)
    assert all(r["type"] == "message" for r in results)
    assert calls == 1  # the leader leaving did not start a second generation
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_run_once_generation_stops_when_the_last_caller_leaves() -> None:
    cache = ResponseCache(settings_for(None))
    started, stopped = asyncio.Event(), asyncio.Event()

    async def produce() -> dict[str, Any] | None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return message()

    callers = [asyncio.create_task(cache.run_once("k", produce)) for _ in range(3)]
    await started.wait()
    for caller in callers[:2]:
        caller.cancel()
    await asyncio.sleep(0.01)
    assert not stopped.is_set()  # one caller still waits
    callers[2].cancel()
    await asyncio.wait_for(stopped.wait(), 2)
    assert cache.in_flight() == 0


async def test_run_once_cancelled_follower_does_not_hurt_leader() -> None:
    cache = ResponseCache(settings_for(None))
    gate = asyncio.Event()

    async def produce() -> dict[str, Any] | None:
        await gate.wait()
        return message()

    leader = asyncio.create_task(cache.run_once("k", produce))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(cache.run_once("k", produce))
    other = asyncio.create_task(cache.run_once("k", produce))
    await asyncio.sleep(0.01)
    follower.cancel()
    gate.set()
    assert (await asyncio.wait_for(leader, 2))["type"] == "message"
    assert (await asyncio.wait_for(other, 2))["type"] == "message"


async def test_follower_copy_is_snapshot_at_completion() -> None:
    cache = ResponseCache(settings_for(None))
    gate = asyncio.Event()
    original = message(text="original")

    async def produce() -> dict[str, Any] | None:
        await gate.wait()
        return original

    leader = asyncio.create_task(cache.run_once("k", produce))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(cache.run_once("k", produce))
    await asyncio.sleep(0.01)
    gate.set()
    mine = await leader
    mine["content"][0]["text"] = "mutated by the leader's route"
    theirs = await follower
    assert theirs["content"][0]["text"] == "original"


# ---------------------------------------------------------------------------- TLS and auth


async def test_wrong_ca_fails_open(
    redis_tls_server: RedisTLSServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        redis_tls_server, redis_ca_file=str(redis_tls_server.certs.wrong_ca_file)
    )
    caplog.set_level(logging.WARNING, logger="proxy_app.cache")
    async with open_cache(settings) as cache:
        health = await cache.health()
        assert health["status"] == "error"
        assert "CERTIFICATE_VERIFY_FAILED" in health["error"] or "certificate" in health["error"]
        assert await cache.get("llmsh:v1:x:y") is None
        await cache.put("llmsh:v1:x:y", message())
        assert cache.store_errors >= 1
        assert cache.last_error
    assert redis_tls_server.password not in caplog.text
    assert redis_tls_server.password not in (health.get("error") or "")


async def test_missing_ca_file_fails_open(redis_tls_server: RedisTLSServer) -> None:
    settings = settings_for(redis_tls_server, redis_ca_file="/nonexistent/ca.crt")
    async with open_cache(settings) as cache:
        assert (await cache.health())["status"] == "error"
        assert await cache.get("llmsh:v1:x:y") is None


async def test_missing_password_reports_auth_error(redis_tls_server: RedisTLSServer) -> None:
    settings = settings_for(redis_tls_server, redis_url=redis_tls_server.url_without_password)
    async with open_cache(settings) as cache:
        health = await cache.health()
        assert health["status"] == "error"
        assert re.search(r"auth|NOAUTH", health["error"], re.I), health
        assert await cache.get("llmsh:v1:x:y") is None
        await cache.put("llmsh:v1:x:y", message())


async def test_wrong_password_is_redacted(
    redis_tls_server: RedisTLSServer, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "wrong-" + secrets.token_hex(8)
    url = f"rediss://:{bad}@{redis_tls_server.host}:{redis_tls_server.port}/0"
    caplog.set_level(logging.WARNING, logger="proxy_app.cache")
    async with open_cache(settings_for(redis_tls_server, redis_url=url)) as cache:
        health = await cache.health()
        assert health["status"] == "error"
        assert await cache.get("llmsh:v1:x:y") is None
    assert bad not in caplog.text and bad not in health["error"]


async def test_localhost_san_works(redis_tls_server: RedisTLSServer) -> None:
    url = f"rediss://:{redis_tls_server.password}@localhost:{redis_tls_server.port}/0"
    async with open_cache(settings_for(redis_tls_server, redis_url=url)) as cache:
        assert await cache.health() == {"status": "ok"}


async def test_hostname_mismatch_is_refused(
    redis_tls_server_factory: Callable[..., RedisTLSServer], redis_tls_certs: RedisTLSCerts
) -> None:
    # Serve the client cert (CA-signed, SAN proxy-client.test only): the chain verifies, the
    # name does not, so this only fails if hostname checking is on.
    server = redis_tls_server_factory(
        server_cert_file=redis_tls_certs.client_cert_file,
        server_key_file=redis_tls_certs.client_key_file,
    )
    async with open_cache(settings_for(server)) as cache:
        health = await cache.health()
    assert health["status"] == "error"
    assert re.search(r"mismatch|not valid|hostname", health["error"], re.I), health


async def test_mutual_tls(
    redis_tls_server_factory: Callable[..., RedisTLSServer],
) -> None:
    server = redis_tls_server_factory(auth_clients="yes")
    async with open_cache(settings_for(server)) as cache:
        assert (await cache.health())["status"] == "error"  # no client cert: refused
    with_cert = settings_for(
        server,
        redis_cert_file=str(server.certs.client_cert_file),
        redis_key_file=str(server.certs.client_key_file),
    )
    async with open_cache(with_cert) as cache:
        assert await cache.health() == {"status": "ok"}
        key = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
        await cache.put(key, message())
        assert await cache.get(key) is not None


async def test_unresponsive_server_times_out_fast(unused_tcp_port_anyio: int) -> None:
    # A listener that accepts TCP but never speaks TLS: the handshake must time out quickly.
    listener = socket.socket()
    listener.bind(("127.0.0.1", unused_tcp_port_anyio))
    listener.listen(16)
    try:
        url = f"rediss://:pw@127.0.0.1:{unused_tcp_port_anyio}/0"
        settings = settings_for(None, redis_url=url, redis_timeout=0.2)
        async with open_cache(settings) as cache:
            started = time.monotonic()
            assert await cache.get("llmsh:v1:x:y") is None
            assert time.monotonic() - started < 1.0
            started = time.monotonic()
            await cache.put("llmsh:v1:x:y", message())  # breaker open: skipped at once
            assert time.monotonic() - started < 0.05
            assert cache.breaker_skips == 1
            assert (await cache.health())["status"] == "error"
    finally:
        listener.close()


@pytest.fixture
def unused_tcp_port_anyio() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------- outage and recovery


async def test_redis_killed_and_restarted(redis_tls_server_fn: RedisTLSServer) -> None:
    server = redis_tls_server_fn
    async with open_cache(settings_for(server), breaker_seconds=0.2) as cache:
        key = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
        await cache.put(key, message())
        assert await cache.get(key) is not None

        server.stop()
        assert await cache.get(key) is None  # no raise
        await cache.put(key, message())  # no raise (breaker skip)
        errors = cache.store_errors
        assert errors >= 1
        assert (await cache.health())["status"] == "error"
        await asyncio.sleep(0.25)
        await cache.put(key, message())  # breaker closed again: a real attempt, still no raise
        assert cache.store_errors > errors

        server.start()
        await asyncio.sleep(0.25)  # let the breaker expire
        msg = message(text="after restart")
        await cache.put(key, msg)  # the data died with the process; store again
        assert await cache.get(key) == msg
        assert await cache.health() == {"status": "ok"}


async def test_restart_recovers_pooled_connections(redis_tls_server_fn: RedisTLSServer) -> None:
    """Connections pooled before the restart are stale; the next call must still succeed."""
    server = redis_tls_server_fn
    async with open_cache(settings_for(server)) as cache:
        keys = [
            cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
            for _ in range(4)
        ]
        await asyncio.gather(*(cache.put(k, message()) for k in keys))  # several pooled conns
        server.restart()
        errors = cache.store_errors
        await cache.put(keys[0], message())
        assert await cache.get(keys[0]) is not None
        assert cache.store_errors == errors
        hits = cache.hits
        results = await asyncio.gather(*(cache.get(keys[0]) for _ in range(4)))
        assert all(r is not None for r in results)
        assert cache.hits == hits + 4


async def test_get_returns_independent_objects(redis_tls_server: RedisTLSServer) -> None:
    async with open_cache(settings_for(redis_tls_server)) as cache:
        key = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
        msg = message()
        await cache.put(key, msg)
        first = await cache.get(key)
        assert first is not None
        first["id"] = "msg_new"
        assert await cache.get(key) == copy.deepcopy(msg)
