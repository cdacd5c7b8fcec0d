"""Build proxy_app's wheel on the control machine, once per content change.

The wheel is cached under ``build/wheels/<digest>/`` (git-ignored), keyed by the files that
go into it, so an unchanged tree re-uses byte-identical wheel bytes and the upload (and the
install on the host) stays a no-op.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pyinfra.api import DeployError

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
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp, str(repo)],
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
