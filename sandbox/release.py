"""Serve the Ollama double's release archive to the sandbox, as GitHub serves the real one.

The sandbox shares the control machine's network, so a file server on 127.0.0.1 is reachable
from it. ``served_release`` builds the archive (ollama_double/archive.py), serves it,
and writes ``<sandbox state dir>/ollama_release.json`` for group_data/local.py. The file stays
when the server stops: its version and SHA-256 still describe what was installed (the archive
is reproducible), which the host checks and the tunnel helper read; only a deploy needs the URL,
and a deploy runs through here, which rewrites it. As a command it wraps another command:

    python -m sandbox.release -- pyinfra -y inventories/local.py deploy.py
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ollama_double.archive import build_archive
from roles.ollama.defaults import DEFAULTS
from sandbox import default_state_dir

RELEASE_FILE = "ollama_release.json"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


@contextmanager
def served_release(
    workdir: Path, state_dir: Path | None = None, version: str | None = None
) -> Iterator[dict[str, str]]:
    """Build, serve and announce the double's archive; yield {"version", "url", "sha256"}."""
    version = version or str(DEFAULTS["ollama_version"])
    path, sha256 = build_archive(str(workdir), version, compression="zst")
    handler = functools.partial(_QuietHandler, directory=str(workdir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="ollama-release", daemon=True)
    thread.start()
    port = server.server_address[1]
    release = {
        "version": version,
        "url": f"http://127.0.0.1:{port}/{Path(path).name}",
        "sha256": sha256,
    }
    state = Path(state_dir or default_state_dir())
    state.mkdir(parents=True, exist_ok=True)
    release_file = state / RELEASE_FILE
    release_file.write_text(json.dumps(release, indent=2) + "\n")
    try:
        yield release
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Serve the archive while running the given command; return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.release", description=__doc__)
    parser.add_argument("--version", default=None, help="version the double reports")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="command to run (after --)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command to run while the archive is served, after --")
    with tempfile.TemporaryDirectory(prefix="ollama-release-") as tmp:
        with served_release(Path(tmp), version=args.version) as release:
            sys.stderr.write(f"serving {release['url']} (sha256 {release['sha256'][:12]}…)\n")
            return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
