"""The proxy wheel's cache key: the packaged sources, nothing else."""

from __future__ import annotations

from pathlib import Path

from roles.proxy.wheel import source_digest


def _tree(root: Path) -> Path:
    (root / "proxy_app" / "__pycache__").mkdir(parents=True)
    (root / "proxy_app" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return root


def test_digest_ignores_bytecode(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = source_digest(root)
    (root / "proxy_app" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    assert source_digest(root) == before


def test_digest_follows_sources_and_metadata(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = source_digest(root)
    (root / "proxy_app" / "new.py").write_text("x = 1\n")
    after_source = source_digest(root)
    (root / "README.md").write_text("readme\n")
    assert len({before, after_source, source_digest(root)}) == 3
