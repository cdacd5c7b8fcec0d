"""Response cache: finished Anthropic Message JSON in Redis (TLS), keyed by the upstream request.

What is cached
    Only complete, successful Messages (``stop_reason`` in end_turn / tool_use / stop_sequence /
    max_tokens), as compact JSON, under ``llmsh:v1:<namespace>:<sha256>`` with ``EX cache_ttl``.

The key
    SHA-256 over canonical JSON (sorted keys, compact separators, ASCII) of the key-schema version,
    the namespace, the model digest and the upstream Ollama ``/api/chat`` request dict minus the
    keys that do not change the answer (``stream``, ``keep_alive``). The namespace is the first 16
    hex digits of SHA-256(API key) (the key itself is never stored) or ``shared`` when
    ``Settings.cache_shared`` is on.

Fail open
    Every Redis/TLS/auth/timeout error is swallowed: ``get`` returns ``None`` and ``put`` does
    nothing; the error is kept in ``last_error``, counted in ``store_errors`` and logged at
    warning (with the password redacted). After an error Redis is skipped for ``breaker_seconds``
    (default 1 s) so a dead Redis does not add a timeout to every request; afterwards redis-py
    reconnects by itself, so the same object resumes once Redis is back.

Single-flight
    ``flights`` (proxy_app.cache.flight) collapses identical requests that are in flight at the same
    moment in this process; ``proxy_app.cache.policy.ThroughCache`` runs generations through it.
    The table is per process: each uvicorn worker has its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy_app.cache.flight import SingleFlight
from proxy_app.config import Settings

__all__ = [
    "CACHEABLE_STOP_REASONS",
    "KEY_PREFIX",
    "KEY_SCHEMA_VERSION",
    "NON_KEY_FIELDS",
    "ResponseCache",
]

log = logging.getLogger("proxy_app.cache")

T = TypeVar("T")

KEY_SCHEMA_VERSION = 1
KEY_PREFIX = f"llmsh:v{KEY_SCHEMA_VERSION}"
#: Upstream request keys that never change the generated answer.
NON_KEY_FIELDS = frozenset({"stream", "keep_alive"})
#: Only messages that ended with one of these reasons are stored.
CACHEABLE_STOP_REASONS = frozenset({"end_turn", "tool_use", "stop_sequence", "max_tokens"})
SHARED_NAMESPACE = "shared"
_NAMESPACE_HEX = 16


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
    ).encode("ascii")


class ResponseCache:
    """Redis-backed cache of finished Messages plus an in-process single-flight table.

    Used through proxy_app.cache.policy: ``cache_policy`` (``cacheable_request``, ``key``,
    ``record_bypass``) decides per request, the route reads ``get``, and ``ThroughCache``
    shares identical generations in flight (``flights``) and ``put``s a complete answer.

    Counters (plain ints, for /metrics): ``hits``, ``misses``, ``bypasses``, ``store_errors``
    (any Redis error on get or put), ``bytes_stored``, plus ``breaker_skips`` (get/put skipped
    while the breaker is open); ``flights`` counts single-flight leaders and followers.
    """

    def __init__(self, settings: Settings, *, breaker_seconds: float = 1.0) -> None:
        self.settings = settings
        self.enabled: bool = settings.cache_enabled
        self.breaker_seconds = breaker_seconds
        self.hits = 0
        self.misses = 0
        self.bypasses = 0
        self.store_errors = 0
        self.bytes_stored = 0
        self.breaker_skips = 0
        self.last_error: str | None = None
        self._down_until = 0.0
        self.flights = SingleFlight()
        self._secret = ""
        self._config_error: str | None = None
        self._redis: Redis | None = None
        if not self.enabled:
            return
        url = settings.redis_url
        try:
            password = urlsplit(url).password
            self._secret = unquote(password) if password else ""
            # A bounded pool: a burst waits up to redis_timeout for a connection (then fails
            # open) instead of leaving a hundred idle TLS connections behind.
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=settings.redis_max_connections,
                timeout=settings.redis_timeout,
                **self._client_kwargs(settings),
            )
            self._redis = Redis.from_pool(pool)
        except Exception as exc:  # a bad URL must not break the app: report it via health()
            self._config_error = f"invalid redis_url: {self._describe(exc)}"
            self.last_error = self._config_error
            log.error("response cache disabled: %s", self._config_error)

    @staticmethod
    def _client_kwargs(settings: Settings) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "socket_timeout": settings.redis_timeout,
            "socket_connect_timeout": settings.redis_timeout,
            # One immediate retry on a broken connection, so a pooled connection that died with a
            # Redis restart is replaced transparently; timeouts are not retried.
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        }
        if settings.redis_url.startswith("rediss://"):
            kwargs.update(
                ssl_cert_reqs="required",
                ssl_check_hostname=True,
                ssl_ca_certs=settings.redis_ca_file or None,
                ssl_certfile=settings.redis_cert_file or None,
                ssl_keyfile=settings.redis_key_file or None,
            )
        elif settings.redis_ca_file or settings.redis_cert_file:
            log.warning("redis_ca_file/redis_cert_file are ignored: redis_url is not rediss://")
        return kwargs

    # ------------------------------------------------------------------ keys and policy

    def namespace(self, api_key: str) -> str:
        """``shared`` in shared mode, else a SHA-256 prefix of the API key (never the key)."""
        if self.settings.cache_shared:
            return SHARED_NAMESPACE
        return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:_NAMESPACE_HEX]

    def key(self, *, api_key: str, model_digest: str, upstream: Mapping[str, Any]) -> str:
        """The Redis key for this upstream request. Pure and cheap (one JSON dump, one hash)."""
        namespace = self.namespace(api_key)
        request = {k: v for k, v in upstream.items() if k not in NON_KEY_FIELDS}
        material = {
            "v": KEY_SCHEMA_VERSION,
            "ns": namespace,
            "digest": model_digest,
            "req": request,
        }
        return f"{KEY_PREFIX}:{namespace}:{hashlib.sha256(_canonical(material)).hexdigest()}"

    def cacheable_request(self, upstream: Mapping[str, Any]) -> bool:
        """Whether this request may use the cache (and single-flight) under ``cache_mode``.

        ``off`` or no ``redis_url`` -> False; ``all`` -> True; ``deterministic`` -> only when
        ``options.temperature`` is exactly 0 (a missing temperature means Ollama's default 0.8).
        """
        if not self.enabled:
            return False
        if self.settings.cache_mode == "all":
            return True
        if self.settings.cache_mode == "deterministic":
            options = upstream.get("options")
            temperature = options.get("temperature") if isinstance(options, Mapping) else None
            return (
                isinstance(temperature, (int, float))
                and not isinstance(temperature, bool)
                and temperature == 0
            )
        return False

    @staticmethod
    def cacheable_message(message: Mapping[str, Any]) -> bool:
        """A complete, successful Message: the only thing ``put`` stores."""
        return (
            isinstance(message, Mapping)
            and message.get("type", "message") == "message"
            and message.get("stop_reason") in CACHEABLE_STOP_REASONS
            and isinstance(message.get("content"), list)
        )

    def record_bypass(self) -> None:
        """Count a request that skipped the cache (mode, ``cache-control: no-cache``, …)."""
        self.bypasses += 1

    def stats(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "bypasses": self.bypasses,
            "store_errors": self.store_errors,
            "bytes_stored": self.bytes_stored,
            "breaker_skips": self.breaker_skips,
            "flight_leaders": self.flights.leaders,
            "flight_followers": self.flights.followers,
        }

    # ------------------------------------------------------------------ Redis I/O (fail open)

    def _usable(self) -> Redis | None:
        if self._redis is None:
            return None
        if self._down_until and time.monotonic() < self._down_until:
            self.breaker_skips += 1
            return None
        return self._redis

    def _describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}".strip()
        if self._secret:
            text = text.replace(self._secret, "***")
        return text

    def _failed(self, op: str, exc: BaseException) -> None:
        self.store_errors += 1
        self.last_error = self._describe(exc)
        self._down_until = time.monotonic() + self.breaker_seconds
        log.warning("response cache %s failed (fail open): %s", op, self.last_error)

    def _recovered(self) -> None:
        if self._down_until:
            self._down_until = 0.0
            log.info("response cache: redis is reachable again")

    async def get(self, key: str) -> dict[str, Any] | None:
        """The stored Message dict, or None on a miss, when disabled, or on any Redis error."""
        message, _ = await self.lookup(key)
        return message

    async def lookup(self, key: str) -> tuple[dict[str, Any] | None, bool]:
        """`get`, and whether the answer is unknown rather than absent (Redis failed or its
        breaker is open: the lookup failed open)."""
        redis = self._usable()
        if redis is None:
            if self.enabled:
                self.misses += 1
            return None, self.enabled
        try:
            raw = await redis.get(key)
        except Exception as exc:
            self._failed("get", exc)
            self.misses += 1
            return None, True
        self._recovered()
        if raw is None:
            self.misses += 1
            return None, False
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            log.warning("response cache: ignoring undecodable entry %s", key)
            self.misses += 1
            return None, False
        self.hits += 1
        return value, False

    async def put(self, key: str, message: Mapping[str, Any]) -> None:
        """Store a complete Message for ``cache_ttl`` seconds; anything else is silently refused."""
        if not self.cacheable_message(message):
            return
        redis = self._usable()
        if redis is None:
            return
        try:
            data = _canonical(message)
        except Exception as exc:  # e.g. a circular structure: refuse, never raise
            log.warning("response cache: cannot serialise message: %s", self._describe(exc))
            return
        try:
            await redis.set(key, data, ex=self.settings.cache_ttl)
        except Exception as exc:
            self._failed("put", exc)
            return
        self._recovered()
        self.bytes_stored += len(data)

    async def health(self) -> dict[str, str]:
        """``{"status": "ok"|"error"|"disabled", "error"?: str}`` via PING; never raises.

        Ignores the circuit breaker (and closes it on success).
        """
        if not self.enabled:
            return {"status": "disabled"}
        if self._redis is None:
            return {"status": "error", "error": self._config_error or "redis client unavailable"}
        try:
            await self._redis.ping()
        except Exception as exc:
            self.last_error = self._describe(exc)
            return {"status": "error", "error": self.last_error}
        self._recovered()
        return {"status": "ok"}

    async def aclose(self) -> None:
        redis, self._redis = self._redis, None
        if redis is not None:
            try:
                await redis.aclose()
            except Exception as exc:
                log.debug("response cache: error while closing: %s", self._describe(exc))

    async def run_once(self, key: str, produce: Callable[[], Awaitable[T]]) -> T:
        """Single-flight for cacheable requests; see flight.SingleFlight.run_once."""
        return await self.flights.run_once(key, produce)

    def in_flight(self) -> int:
        """Number of keys currently being produced by a leader (for /metrics or tests)."""
        return self.flights.in_flight()
