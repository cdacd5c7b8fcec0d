"""The Redis connection pool is bounded: a burst never leaves more than the cap open."""

from __future__ import annotations

import asyncio

import pytest

from devkit.redis_tls import RedisTLSServer
from tests.cache.test_cache import (  # noqa: F401 - anyio_backend is a fixture
    DIGEST,
    anyio_backend,
    base_upstream,
    open_cache,
    settings_for,
    unique_key,
)

pytestmark = pytest.mark.anyio


async def test_a_burst_opens_at_most_the_pool_size(redis_tls_server: RedisTLSServer) -> None:
    async with open_cache(settings_for(redis_tls_server)) as admin:
        assert admin._redis is not None
        before = (await admin._redis.info("clients"))["connected_clients"]
        settings = settings_for(redis_tls_server, redis_max_connections=4, redis_timeout=2.0)
        async with open_cache(settings) as cache:
            key = cache.key(api_key=unique_key(), model_digest=DIGEST, upstream=base_upstream())
            results = await asyncio.gather(*(cache.get(key) for _ in range(64)))
            assert results == [None] * 64 and cache.store_errors == 0  # all served, none failed
            during = (await admin._redis.info("clients"))["connected_clients"]
        assert during - before <= 4
