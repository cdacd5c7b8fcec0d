"""Every role key is documented: prefixed with its role and listed in README.md's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from roles.llamacpp.defaults import DEFAULTS as LLAMACPP
from roles.ollama.defaults import DEFAULTS as OLLAMA
from roles.proxy.defaults import DEFAULTS as PROXY
from roles.redis.defaults import DEFAULTS as REDIS

README = Path(__file__).resolve().parents[2] / "README.md"
KEYS = (
    [("ollama", k) for k in OLLAMA]
    + [("llamacpp", k) for k in LLAMACPP]
    + [("redis", k) for k in REDIS]
    + [("proxy", k) for k in PROXY]
)
# Keys read outside a role's defaults (roles/services.py, roles/engine.py).
SHARED_KEYS = ["supervisor_log_to_stdout", "engine"]


@pytest.mark.parametrize(("role", "key"), KEYS, ids=[key for _, key in KEYS])
def test_key_is_prefixed_with_its_role(role: str, key: str) -> None:
    assert key.startswith(f"{role}_")


@pytest.mark.parametrize("key", [key for _, key in KEYS] + SHARED_KEYS)
def test_key_is_in_the_readme(key: str) -> None:
    text = README.read_text() if README.exists() else ""
    if "`ollama_version`" not in text:
        pytest.skip("README.md has no variable tables yet")
    assert f"`{key}`" in text, f"README.md does not document {key}"
