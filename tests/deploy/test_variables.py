"""Every role key is documented: prefixed with its role, and a row of its role's table in
docs/deploying.md whose Default cell is the value in the role's defaults.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from roles.engine import DEFAULT_ENGINE
from roles.llamacpp.defaults import DEFAULTS as LLAMACPP
from roles.ollama.defaults import DEFAULTS as OLLAMA
from roles.proxy.defaults import DEFAULTS as PROXY
from roles.redis.defaults import DEFAULTS as REDIS
from roles.services import SUPERVISOR_LOG_TO_STDOUT

PAGE = Path(__file__).resolve().parents[2] / "docs" / "deploying.md"
ROLES = {"ollama": OLLAMA, "llamacpp": LLAMACPP, "redis": REDIS, "proxy": PROXY}
KEYS = [(role, key) for role, defaults in ROLES.items() for key in defaults]
# Keys read outside a role's defaults (roles/services.py, roles/engine.py), with their defaults.
SHARED = {"supervisor_log_to_stdout": SUPERVISOR_LOG_TO_STDOUT, "engine": DEFAULT_ENGINE}


def _table(heading: str) -> dict[str, str]:
    """Variable -> Default cell of the table under the `### …` heading that starts so."""
    text = PAGE.read_text()
    match = re.search(rf"^### {re.escape(heading)}.*?\n(?P<body>.*?)(?=^#|\Z)", text, re.M | re.S)
    assert match, f"docs/deploying.md has no section '### {heading}…'"
    rows = re.findall(r"^\| `(\w+)` \| `(.*?)` \|", match["body"], re.M)
    return dict(rows)


def _shown(value: object) -> set[str]:
    """How a default may be written in the table: a string bare or quoted, else its repr."""
    if isinstance(value, str):
        return {'""'} if value == "" else {value, f'"{value}"'}
    return {repr(value)}


@pytest.mark.parametrize(("role", "key"), KEYS, ids=[key for _, key in KEYS])
def test_key_is_prefixed_with_its_role(role: str, key: str) -> None:
    assert key.startswith(f"{role}_")


@pytest.mark.parametrize(("role", "key"), KEYS, ids=[key for _, key in KEYS])
def test_key_is_in_its_role_table_with_its_default(role: str, key: str) -> None:
    table = _table(f"The {role} role")
    assert key in table, f"docs/deploying.md's {role} table does not document {key}"
    assert table[key] in _shown(ROLES[role][key]), (
        f"docs/deploying.md gives {key} the default {table[key]!r}; "
        f"roles/{role}/defaults.py says {ROLES[role][key]!r}"
    )


@pytest.mark.parametrize("key", sorted(SHARED))
def test_shared_key_is_documented_with_its_default(key: str) -> None:
    table = _table("Host data read outside the roles")
    assert key in table, f"docs/deploying.md does not document {key}"
    assert table[key] in _shown(SHARED[key])


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_table_lists_only_its_keys(role: str) -> None:
    assert set(_table(f"The {role} role")) == set(ROLES[role])
