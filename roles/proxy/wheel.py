"""proxy_app's wheel: built on the control machine once per content change, installed once.

The wheel is cached under ``build/wheels/<digest>/`` (git-ignored), keyed by the files that
go into it, so an unchanged tree re-uses byte-identical wheel bytes and the upload (and the
install on the host) stays a no-op.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path

from pyinfra.api.exceptions import DeployError
from pyinfra.api.operation import operation
from pyinfra.context import host
from pyinfra.facts.files import FileContents

REPO = Path(__file__).resolve().parents[2]
METADATA = ("pyproject.toml", "README.md", "setup.cfg", "setup.py", "MANIFEST.in")


def source_digest(repo: Path = REPO) -> str:
    """SHA-256 over the packaging files and every file of the proxy_app package."""
    digest = hashlib.sha256()
    paths = [repo / name for name in METADATA if (repo / name).is_file()]
    paths += sorted(
        p
        for p in (repo / "proxy_app").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )
    for path in paths:
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def build_wheel(repo: Path = REPO) -> Path:
    """Return the path of proxy_app's wheel, building it with `pip wheel` when not cached."""
    out = repo / "build" / "wheels" / source_digest(repo)[:16]
    cached = sorted(out.glob("*.whl"))
    if cached:
        return cached[0]
    with tempfile.TemporaryDirectory(prefix="proxy-wheel-") as tmp:
        # Build from a clean copy: setuptools' in-tree build/lib can carry deleted modules.
        source = Path(tmp) / "src"
        shutil.copytree(
            repo / "proxy_app", source / "proxy_app", ignore=shutil.ignore_patterns("__pycache__")
        )
        for name in METADATA:
            if (repo / name).is_file():
                shutil.copy2(repo / name, source / name)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp, str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        built = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not built:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            raise DeployError(f"Building the proxy_app wheel with `pip wheel` failed:\n{tail}")
        out.mkdir(parents=True, exist_ok=True)
        dest = out / built[0].name
        shutil.move(str(built[0]), dest)
    return dest


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a local file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@operation()
def wheel_installed(venv: str, wheel: str, sha256: str) -> Generator[str, None, None]:
    """
    Install ``wheel`` (and its dependencies from the index) unless this exact wheel is in.

    + venv: the virtualenv's path
    + wheel: the uploaded wheel on the host
    + sha256: the wheel's digest, recorded in ``<venv>/.proxy_app-wheel`` after a good install
    """
    marker = f"{venv}/.proxy_app-wheel"
    if (host.get_fact(FileContents, path=marker) or [""])[0].strip() == sha256:
        host.noop(f"proxy_app wheel {sha256[:12]}… is installed")
        return
    pip_ = f"{venv}/bin/pip install --disable-pip-version-check --no-input --quiet"
    yield f"{pip_} {shlex.quote(wheel)}"
    # Same version, new bytes: pip calls it "already satisfied", so force the package itself.
    yield f"{pip_} --no-deps --force-reinstall {shlex.quote(wheel)}"
    yield f"echo {sha256} > {marker}"
