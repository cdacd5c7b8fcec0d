"""The README documents every PROXY_* setting and every role variable."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from proxy_app.config import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"PROXY_{name.upper()}" in README


def _role_defaults() -> list[str]:
    keys = []
    for role in sorted((Path(__file__).parents[2] / "roles").glob("*/defaults.py")):
        module = importlib.import_module(f"roles.{role.parent.name}.defaults")
        keys += list(module.DEFAULTS)
    return keys


@pytest.mark.parametrize("key", _role_defaults())
def test_every_role_variable_is_documented(key: str) -> None:
    assert re.search(rf"`{key}`", README), f"README lacks the role variable {key}"
