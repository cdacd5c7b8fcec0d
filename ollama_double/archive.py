"""Build a fake Ollama release archive around the Ollama API **test double** (not Ollama).

``build_archive(dest_dir, version)`` writes ``ollama-linux-amd64.tar.zst`` (``.tgz`` when the
``zstd`` command is missing) with the real release layout -- ``bin/ollama`` (one executable
python3 script holding the whole double: its modules and the CLI) and ``lib/ollama/`` (a
README only) -- plus ``sha256sum.txt`` with ``<hex>  ./<asset>`` like real releases. Same version
-> same bytes.

    python3 -m ollama_double.archive DEST_DIR [--version 0.12.11] [--compression auto|zst|tgz]
"""

import argparse
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ASSET_BASENAME = "ollama-linux-amd64"
FIXED_MTIME = 1704067200  # 2024-01-01T00:00:00Z, for reproducible archives
_BEGIN = "# --- double-import-begin"
_END = "# --- double-import-end"

README = """\
This is NOT Ollama: it is the llm-selfhost Ollama API test double.

lib/ollama/ of a real Ollama release holds the CUDA/ROCm/Vulkan runner libraries. This archive
was built by llm-selfhost's ollama_double/archive.py: bin/ollama is a python3 script that
imitates Ollama's REST API and CLI (serve, list, pull, ps, rm, show, run, -v) for deploy tests on
a sandbox host. No model runs; replies are canned.
"""


# The double's modules in dependency order: each uses only names defined above it (or inside
# functions, read at call time). Concatenated, each without its marked import block.
MODULES = (
    "errors.py",
    "models.py",
    "scripting.py",
    "kv.py",
    "stream.py",
    "handler.py",
    "server.py",
    "cli.py",
)


def _strip_imports(text: str) -> str:
    """``text`` without its block between the double-import-begin and -end lines, if any."""
    if _BEGIN not in text:
        return text
    start, end = text.index(_BEGIN), text.index(_END)
    return text[:start] + text[text.index("\n", end) + 1 :]


def build_script(version: str) -> str:
    """The single-file ``bin/ollama``: MODULES (import blocks removed) and an entry point."""
    if not re.fullmatch(r"[0-9A-Za-z.+~-]+", version):
        raise ValueError(f"bad version {version!r}")
    parts = []
    for name in MODULES:
        with open(os.path.join(HERE, name), encoding="utf-8") as fh:
            text = _strip_imports(fh.read())
        if name == "models.py":
            text, n = re.subn(r'^DEFAULT_VERSION = ".*"$', f'DEFAULT_VERSION = "{version}"',
                              text, count=1, flags=re.M)
            if n != 1:
                raise RuntimeError("DEFAULT_VERSION line not found in models.py")
        parts.append(f"# ==================== {name} ====================\n{text}")
    return (
        "#!/usr/bin/env python3\n"
        f"# ollama {version} -- Ollama API TEST DOUBLE (llm-selfhost ollama_double), "
        "not Ollama.\n# Generated file: the double's modules concatenated. Do not edit.\n"
        + "\n\n".join(parts)
        + '\n\nif __name__ == "__main__":\n    sys.exit(main())\n'
    )


def _tar_bytes(version: str) -> bytes:
    buf = io.BytesIO()
    entries = [
        ("bin/ollama", build_script(version).encode(), 0o755),
        ("lib/ollama/", None, 0o755),
        ("lib/ollama/README.txt", README.encode(), 0o644),
    ]
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, mode in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = FIXED_MTIME
            info.mode = mode
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zstd_available() -> bool:
    return shutil.which("zstd") is not None


def build_archive(dest_dir: str, version: str = "0.12.11",
                  compression: str = "auto") -> tuple[str, str]:
    """Write the archive and ``sha256sum.txt`` into dest_dir; return (archive path, sha256 hex).

    compression: "zst" (needs the ``zstd`` command: ``apt-get install zstd``), "tgz", or "auto"
    (zst when available, else tgz with a note on stderr).
    """
    if compression == "auto":
        compression = "zst" if zstd_available() else "tgz"
        if compression == "tgz":
            sys.stderr.write("ollama_double.archive: zstd not found (apt-get install zstd); "
                             "building .tgz instead of .tar.zst\n")
    raw = _tar_bytes(version)
    if compression == "zst":
        if not zstd_available():
            raise RuntimeError("the zstd command is required: apt-get install zstd")
        data = subprocess.run(
            ["zstd", "-q", "-19", "--no-progress", "-c", "-"], input=raw, check=True,
            stdout=subprocess.PIPE,
        ).stdout
        asset = ASSET_BASENAME + ".tar.zst"
    elif compression == "tgz":
        data = gzip.compress(raw, compresslevel=9, mtime=0)
        asset = ASSET_BASENAME + ".tgz"
    else:
        raise ValueError(f"unknown compression {compression!r}")
    os.makedirs(dest_dir, exist_ok=True)
    path = os.path.join(dest_dir, asset)
    with open(path, "wb") as fh:
        fh.write(data)
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(dest_dir, "sha256sum.txt"), "w", encoding="utf-8") as fh:
        fh.write(f"{digest}  ./{asset}\n")
    return path, digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest_dir")
    parser.add_argument("--version", default="0.12.11")
    parser.add_argument("--compression", default="auto", choices=["auto", "zst", "tgz"])
    args = parser.parse_args(argv)
    path, digest = build_archive(args.dest_dir, args.version, args.compression)
    print(f"{digest}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
