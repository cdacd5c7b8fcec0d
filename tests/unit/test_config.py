"""Settings come from PROXY_* variables; bad values are refused with a sentence naming them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from proxy_app.config import Settings


def test_defaults_are_the_documented_contract() -> None:
    settings = Settings()
    assert (settings.host, settings.port, settings.api_keys) == ("127.0.0.1", 8000, [])
    assert settings.ollama_url == "http://127.0.0.1:11434"
    assert (settings.default_model, settings.num_ctx) == ("qwen2.5-coder:7b", 32768)
    assert not settings.cache_enabled


def test_lists_and_tables_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_API_KEYS", " a , b,,")
    monkeypatch.setenv("PROXY_MODEL_ALIASES", "haiku=qwen2.5-coder:1.5b, claude-x=m:1")
    monkeypatch.setenv("PROXY_REDIS_URL", "rediss://:pw@localhost:6379/0")
    settings = Settings()
    assert settings.api_keys == ["a", "b"]
    assert settings.model_aliases == {"haiku": "qwen2.5-coder:1.5b", "claude-x": "m:1"}
    assert settings.cache_enabled


def test_each_model_may_have_its_own_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_MODEL_NUM_CTX", "qwen2.5-coder:1.5b=16384, qwen3-coder=65536")
    settings = Settings()
    assert settings.num_ctx_for("qwen2.5-coder:1.5b") == 16384
    assert settings.num_ctx_for("qwen3-coder:latest") == 65536  # an implicit :latest matches
    assert settings.num_ctx_for("qwen2.5-coder:7b") == 32768  # PROXY_NUM_CTX for the rest


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("PROXY_MODEL_ALIASES", "haiku", "name=ollama-model"),
        ("PROXY_REDIS_URL", "http://x", "rediss://"),
        ("PROXY_CACHE_MODE", "sometimes", "all"),
        ("PROXY_MODEL_NUM_CTX", "qwen2.5-coder:1.5b=lots", "ollama-model=tokens"),
        ("PROXY_MODEL_NUM_CTX", "small:1b=2048", "PROXY_MODEL_NUM_CTX small:1b=2048"),
        ("PROXY_OUTPUT_RESERVE", "40000", "PROXY_NUM_CTX=32768"),
    ],
)
def test_bad_values_name_the_fix(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=words):
        Settings()


def test_open_public_bind_refuses_to_start() -> None:
    env = {**os.environ, "PROXY_HOST": "0.0.0.0", "PROXY_API_KEYS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "proxy_app"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "PROXY_API_KEYS is empty but PROXY_HOST=0.0.0.0" in done.stderr
