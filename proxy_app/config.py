"""Settings: one typed class, read from `PROXY_*` environment variables by the app factory."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CacheMode = Literal["all", "deterministic", "off"]
EngineKind = Literal["ollama", "openai"]
# Where an OpenAI-compatible engine listens by default: llama-server's port.
OPENAI_URL = "http://127.0.0.1:8080"


def _split_csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    """Every knob of proxy_app; docs/proxy_app.md's settings table lists each one."""

    model_config = SettingsConfigDict(env_prefix="PROXY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The engine: "ollama" (its native API) or "openai" (an OpenAI-compatible server:
    # llama.cpp's llama-server, vLLM, SGLang), and its URL. PROXY_OLLAMA_URL is the older name
    # of PROXY_ENGINE_URL for Ollama, still read. Empty PROXY_ENGINE_URL: PROXY_OLLAMA_URL for
    # Ollama, llama-server's default address for "openai".
    engine: EngineKind = "ollama"
    engine_url: str = ""
    ollama_url: str = "http://127.0.0.1:11434"
    default_model: str = "qwen2.5-coder:7b"
    model_aliases: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    background_model: str = "qwen2.5-coder:1.5b"
    num_ctx: int = Field(default=32768, ge=256)
    model_num_ctx: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    output_reserve: int = Field(default=4096, ge=0)
    keep_alive: str = "30m"
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=600.0, gt=0)
    ping_interval: float = Field(default=10.0, gt=0)
    stream_wait: float = Field(default=0.5, ge=0)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    client_timeout: float = Field(default=60.0, gt=0)
    idle_timeout: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=1024, ge=16)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    workers: int = Field(default=1, ge=1)
    # Threads per worker process for CPU-heavy steps (counting, large bodies): one per core
    # would do for throughput, but under the GIL more threads keep one large count from
    # queueing the ordinary ones behind it (proxy_app.offload).
    worker_threads: int = Field(default=4, ge=1, le=64)

    redis_url: str = ""
    redis_ca_file: str = ""
    redis_cert_file: str = ""
    redis_key_file: str = ""
    redis_timeout: float = Field(default=0.25, gt=0)
    redis_max_connections: int = Field(default=16, ge=1)
    cache_ttl: int = Field(default=86400, ge=1)
    cache_mode: CacheMode = "all"
    cache_shared: bool = False

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> object:
        return _split_csv(value) if isinstance(value, str) else value

    @field_validator("model_aliases", mode="before")
    @classmethod
    def _parse_aliases(cls, value: object) -> object:
        """Read `claude-haiku=qwen2.5-coder:1.5b,sonnet=qwen2.5-coder:7b`."""
        if not isinstance(value, str):
            return value
        table: dict[str, str] = {}
        for item in _split_csv(value):
            name, sep, target = item.partition("=")
            if not sep or not name.strip() or not target.strip():
                raise ValueError(f"alias {item!r} is not of the form name=ollama-model")
            table[name.strip()] = target.strip()
        return table

    @field_validator("model_num_ctx", mode="before")
    @classmethod
    def _parse_model_windows(cls, value: object) -> object:
        """Read `qwen2.5-coder:1.5b=16384,qwen3-coder:30b=65536`."""
        if not isinstance(value, str):
            return value
        table: dict[str, int] = {}
        for item in _split_csv(value):
            name, sep, tokens = item.partition("=")
            if not sep or not name.strip() or not tokens.strip().isdigit():
                raise ValueError(f"window {item!r} is not of the form ollama-model=tokens")
            table[_canonical(name.strip())] = int(tokens)
        return table

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://")):
            raise ValueError(
                "must start with redis:// or rediss:// (or be empty to turn the cache off)"
            )
        return value

    @model_validator(mode="after")
    def _resolve_engine_url(self) -> Settings:
        if not self.engine_url:
            self.engine_url = self.ollama_url if self.engine == "ollama" else OPENAI_URL
        return self

    @model_validator(mode="after")
    def _refuse_open_public_bind(self) -> Settings:
        if not self.api_keys and not _is_loopback(self.host):
            raise ValueError(
                f"PROXY_API_KEYS is empty but PROXY_HOST={self.host} is not a loopback address; "
                "set PROXY_API_KEYS or bind to 127.0.0.1, so the model is not open to anyone"
            )
        return self

    @model_validator(mode="after")
    def _reserve_below_window(self) -> Settings:
        windows = {"PROXY_NUM_CTX": self.num_ctx}
        windows.update({f"PROXY_MODEL_NUM_CTX {m}": n for m, n in self.model_num_ctx.items()})
        for name, window in windows.items():
            if window < 256 or self.output_reserve >= window:
                raise ValueError(
                    f"PROXY_OUTPUT_RESERVE={self.output_reserve} leaves no room for a prompt in "
                    f"{name}={window}; a window needs at least 256 tokens and more than the "
                    "reserve"
                )
        return self

    def num_ctx_for(self, model: str) -> int:
        """The context window of an Ollama model: its PROXY_MODEL_NUM_CTX entry, else num_ctx."""
        return self.model_num_ctx.get(_canonical(model), self.num_ctx)

    @property
    def cache_enabled(self) -> bool:
        return bool(self.redis_url) and self.cache_mode != "off"


def _canonical(model: str) -> str:
    """Ollama's implicit tag: `qwen2.5-coder` means `qwen2.5-coder:latest`."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
