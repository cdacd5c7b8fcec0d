"""ARCHITECTURE.md stays true: what it names exists, and every proxy_app module is in it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[2]
TEXT = (ROOT / "ARCHITECTURE.md").read_text()
# Backticked names; templates such as `roles/<name>/…` or `ssh_*` are patterns, not names.
NAMES = sorted({n for n in re.findall(r"`([^`\s]+)`", TEXT) if not re.search(r"[<{*]", n)})
FILES = [n for n in NAMES if n.endswith((".py", "/"))]
# Dotted names: `roles/services.ensure_manager`, `Backend.plan` (a class of the pipe).
DOTTED = [n for n in NAMES if re.fullmatch(r"[\w/]+(\.[A-Za-z_]\w*)+", n) and n not in FILES]
PIPE_MODULES = ("proxy_app.generation", "proxy_app.cache.policy")


def _exists(name: str) -> bool:
    if (ROOT / name).exists():
        return True
    return any(ROOT.glob(f"proxy_app/**/{name.rstrip('/')}")) or any(
        ROOT.glob(f"roles/**/{name.rstrip('/')}")
    )


@pytest.mark.parametrize("name", FILES)
def test_every_file_named_exists(name: str) -> None:
    assert _exists(name), f"ARCHITECTURE.md names {name}, which is not in the tree"


def _module(head: str) -> ModuleType:
    if head[0].isupper():  # a class of the request pipe
        return next(m for m in map(importlib.import_module, PIPE_MODULES) if hasattr(m, head))
    for candidate in (f"proxy_app.{head}", f"roles.{head}", head):
        try:
            return importlib.import_module(candidate)
        except ModuleNotFoundError:
            continue
    raise AssertionError(f"no module {head}")


@pytest.mark.parametrize("name", DOTTED)
def test_every_dotted_name_resolves(name: str) -> None:
    path, _, attrs = name.replace("/", ".").partition(".")
    parts = attrs.split(".")
    module = _module(path)
    while parts and isinstance(getattr(module, parts[0], None), ModuleType):
        module, parts = getattr(module, parts[0]), parts[1:]
    if parts and parts[0] not in vars(module) and not path[0].isupper():
        module = importlib.import_module(f"{module.__name__}.{parts.pop(0)}")
    target: object = getattr(module, path) if path[0].isupper() else module
    for attr in parts:
        assert hasattr(target, attr), f"ARCHITECTURE.md names {name}: no {attr}"
        target = getattr(target, attr)


@pytest.mark.parametrize(
    "module",
    sorted(
        p.relative_to(ROOT / "proxy_app").as_posix()
        for p in (ROOT / "proxy_app").rglob("*.py")
        if not p.name.startswith("__") and p.parent.name != "routes"
    ),
)
def test_every_proxy_app_module_is_placed(module: str) -> None:
    """A new module of the request path gets its place in the one-screen map."""
    assert f"`{module}`" in TEXT, f"ARCHITECTURE.md does not say where {module} fits"
