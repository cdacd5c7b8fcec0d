"""Settings: one typed class, read from `PROXY_*` environment variables by the app factory."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CacheMode = Literal["all", "deterministic", "off"]


def _split_csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    """Every knob of proxy_app; the README's configuration table lists each one."""

    model_config = SettingsConfigDict(env_prefix="PROXY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ollama_url: str = "http://127.0.0.1:11434"
    default_model: str = "qwen2.5-coder:7b"
    model_aliases: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    num_ctx: int = Field(default=32768, ge=256)
    output_reserve: int = Field(default=4096, ge=0)
    keep_alive: str = "30m"
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=600.0, gt=0)
    ping_interval: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    workers: int = Field(default=1, ge=1)

    redis_url: str = ""
    redis_ca_file: str = ""
    redis_cert_file: str = ""
    redis_key_file: str = ""
    redis_timeout: float = Field(default=0.25, gt=0)
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

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://")):
            raise ValueError(
                "must start with redis:// or rediss:// (or be empty to turn the cache off)"
            )
        return value

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
        if self.output_reserve >= self.num_ctx:
            raise ValueError(
                f"PROXY_OUTPUT_RESERVE={self.output_reserve} leaves no room for a prompt in "
                f"PROXY_NUM_CTX={self.num_ctx}; make it smaller than the window"
            )
        return self

    @property
    def cache_enabled(self) -> bool:
        return bool(self.redis_url) and self.cache_mode != "off"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
