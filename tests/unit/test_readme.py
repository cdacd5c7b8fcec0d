"""The README documents every PROXY_* setting, role variable and make target."""

from __future__ import annotations

import importlib
import re
import subprocess
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


ROOT = Path(__file__).parents[2]


def _make_targets() -> list[str]:
    """Every target the Makefile declares .PHONY (its user-facing commands)."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M)
    assert phony, "the Makefile declares no .PHONY targets"
    return sorted(phony.group(1).split())


@pytest.mark.parametrize("target", _make_targets())
def test_every_make_target_is_in_make_help_and_the_readme(target: str) -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^make {re.escape(target)}\s", done.stdout, re.M), done.stdout
    assert f"make {target}" in README, f"README lacks `make {target}`"
