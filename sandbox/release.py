"""Serve the Ollama double's release archive to the sandbox hosts, as GitHub serves the real one.

The sandbox hosts cannot download Ollama (no internet here), so a fleet runs a small file server
on the control machine's loopback, which every host reaches at 10.0.2.2 (slirp4netns maps that
address to the control machine's 127.0.0.1). It builds the archive (ollama_double/archive.py),
serves it, and writes ``<fleet dir>/ollama_release.json``:

    {"version": "0.32.7", "url": "http://10.0.2.2:PORT/ollama-linux-amd64.tar.zst",
     "sha256": "<hex>"}

which inventories/local.py hands to the deploy as host data. Once llama-server is built
(``python -m devkit.llamacpp build``) it also serves that binary, packed like a llama.cpp release
archive, and SmolLM2's GGUF, announced under ``"llamacpp"`` (version, url, sha256, model_url,
model_sha256, model_name) for hosts whose engine is llamacpp. ``Fleet.up`` starts it
(``ensure_running``) and ``Fleet.down`` stops it. As a command (what ``ensure_running`` starts):

    python -m sandbox.release serve --dir <fleet dir>
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devkit import llamacpp
from ollama_double.archive import build_archive
from roles.ollama.defaults import DEFAULTS

from .errors import SandboxError
from .host import CONTROL_ADDRESS
from .system import clean_env, pidfile_process, stop_pidfile

RELEASE_FILE = "ollama_release.json"
PID_FILE = "release.pid"
SERVER_NEEDLE = "sandbox.release"  # in the server's argv: the pid file still names it


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


def read_release(fleet_dir: Path) -> dict[str, str] | None:
    """Return the announced release while its server runs, else None."""
    if pidfile_process(fleet_dir / PID_FILE, SERVER_NEEDLE) is None:
        return None
    try:
        release = json.loads((fleet_dir / RELEASE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return {key: str(release[key]) for key in ("version", "url", "sha256")}


def read_llamacpp_release(fleet_dir: Path) -> dict[str, str] | None:
    """Return the announced llama-server archive and model while the server runs, else None."""
    if read_release(fleet_dir) is None:
        return None
    try:
        announced = json.loads((fleet_dir / RELEASE_FILE).read_text()).get("llamacpp")
    except (OSError, ValueError):
        return None
    return {str(k): str(v) for k, v in announced.items()} if announced else None


def ensure_running(fleet_dir: Path, timeout: float = 60) -> dict[str, str]:
    """Start the release server for ``fleet_dir`` unless it runs; return the announced release.

    A server started before llama-server was built is restarted, to announce it too.
    """
    release = read_release(fleet_dir)
    if release and (read_llamacpp_release(fleet_dir) or not _llamacpp_built()):
        return release
    stop(fleet_dir)
    fleet_dir.mkdir(parents=True, exist_ok=True)
    (fleet_dir / RELEASE_FILE).unlink(missing_ok=True)
    log = open(fleet_dir / "release.log", "a")  # noqa: SIM115 - handed to the child
    with log:
        subprocess.Popen(
            [sys.executable, "-m", "sandbox.release", "serve", "--dir", str(fleet_dir)],
            cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={
                **clean_env(),
                "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                "LLAMACPP_CACHE": str(llamacpp.cache_dir()),
            },
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not (release := read_release(fleet_dir)):
        if time.monotonic() > deadline:
            raise SandboxError(
                f"The Ollama release server did not start within {timeout:.0f}s; "
                f"see {fleet_dir / 'release.log'}."
            )
        time.sleep(0.1)
    return release


def stop(fleet_dir: Path) -> None:
    """Stop the release server of ``fleet_dir``, if it runs (SIGTERM, up to 10 s)."""
    stop_pidfile(fleet_dir / PID_FILE, SERVER_NEEDLE, signal.SIGTERM, strict=False)


def serve(fleet_dir: Path, version: str) -> None:
    """Build the archive into ``<fleet_dir>/release`` and serve it until terminated."""
    folder = fleet_dir / "release"
    folder.mkdir(parents=True, exist_ok=True)
    path, sha256 = build_archive(str(folder), version, compression="zst")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    release: dict[str, object] = {
        "version": version,
        "url": f"http://{CONTROL_ADDRESS}:{port}/{Path(path).name}",
        "sha256": sha256,
    }
    base = f"http://{CONTROL_ADDRESS}:{port}"
    if _llamacpp_built():
        release["llamacpp"] = _llamacpp_files(folder, base)
    (fleet_dir / PID_FILE).write_text(f"{os.getpid()}\n")
    (fleet_dir / RELEASE_FILE).write_text(json.dumps(release, indent=2) + "\n")
    print(f"serving {release['url']} (sha256 {sha256[:12]}…)", flush=True)
    server.serve_forever()


def _llamacpp_built() -> bool:
    return llamacpp.build_info() is not None and llamacpp.model_path().is_file()


def _llamacpp_files(folder: Path, base: str) -> dict[str, str]:
    """Pack llama-server and link the model into the served folder; return their announcement."""
    archive, sha256 = llamacpp.build_archive(folder)
    model = llamacpp.model_path()
    link = folder / model.name
    link.unlink(missing_ok=True)
    link.symlink_to(model)
    return {
        "version": llamacpp.LLAMA_CPP_TAG,
        "url": f"{base}/{archive.name}",
        "sha256": sha256,
        "model_url": f"{base}/{model.name}",
        "model_sha256": llamacpp.MODEL_SHA256,
        "model_name": llamacpp.MODEL_NAME,
    }


def main(argv: list[str] | None = None) -> int:
    """``serve --dir DIR [--version V]``: build and serve the archive in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.release", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="build and serve the archive until terminated")
    run.add_argument("--dir", type=Path, required=True, help="the fleet's state directory")
    run.add_argument("--version", default=str(DEFAULTS["ollama_version"]))
    args = parser.parse_args(argv)
    serve(args.dir.absolute(), args.version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
