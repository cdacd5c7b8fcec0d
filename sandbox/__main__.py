"""CLI: `python -m sandbox {build,up,down,restart,destroy,status,ssh-config,ssh}` (run as root).

Environment: SANDBOX_HOSTS (fleet size for `up`, default 1), SANDBOX_KIND (each host's kind,
comma-separated, the last repeated: container or systemd; default: as the host last ran, a new
host container), SANDBOX_ENGINE (each host's engine for the deploy, the same way: ollama or
llamacpp; default: as recorded, a new host ollama), SANDBOX_STATE_DIR (fleet directory,
default <repo>/.sandbox), SANDBOX_ROOTFS (default /var/cache/llm-selfhost/bookworm-rootfs),
SANDBOX_DATA_DIR (where the container layers go), SANDBOX_SSH_PORT (first host's ssh port, default
2222), SANDBOX_MIRROR (default: this machine's apt mirror).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from .errors import SandboxError
from .fleet import Fleet
from .host import stop_all
from .rootfs import build_rootfs

ROOT_ONLY = ("build", "up", "down", "restart", "destroy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the cached rootfs if missing or stale")
    build.add_argument("--force", action="store_true", help="rebuild even if current")
    build.add_argument(
        "-n", "--hosts", type=int, default=int(os.environ.get("SANDBOX_HOSTS") or 1),
        help="fleet size whose kinds to build for (env SANDBOX_HOSTS, default 1)",
    )  # fmt: skip
    up = commands.add_parser("up", help="start sandbox-1…N (idempotent), building the rootfs")
    up.add_argument(
        "-n", "--hosts", type=int, default=int(os.environ.get("SANDBOX_HOSTS") or 1),
        help="fleet size (env SANDBOX_HOSTS, default 1)",
    )  # fmt: skip
    down = commands.add_parser("down", help="stop every host: no processes, no mounts left")
    down.add_argument("--all", action="store_true", help="stop every sandbox on this machine")
    restart = commands.add_parser("restart", help="kill every process of a host and boot it")
    restart.add_argument("host", help="sandbox-1, sandbox-2…")
    commands.add_parser("destroy", help="down, then delete the container layers (rootfs stays)")
    commands.add_parser("status", help="print each host's state (exit 0 either way)")
    config = commands.add_parser("ssh-config", help="print the OpenSSH config of the fleet")
    config.add_argument("host", nargs="?", help="one host only")
    ssh = commands.add_parser("ssh", help="ssh into a host, optionally running a command")
    ssh.add_argument("host", help="sandbox-1, sandbox-2…")
    ssh.add_argument("remote", nargs=argparse.REMAINDER)
    return parser


def _build(fleet: Fleet, args: argparse.Namespace) -> None:
    # the rootfs of every kind the fleet will run (SANDBOX_KIND, else its hosts' kinds)
    for kind in sorted(set(fleet.kinds(args.hosts))):
        rootfs = fleet.rootfs_of(kind)
        if not build_rootfs(rootfs, kind=kind, force=args.force):
            print(f"{rootfs} is current")


def _up(fleet: Fleet, args: argparse.Namespace) -> None:
    started = time.monotonic()
    hosts = fleet.up(args.hosts)
    took = time.monotonic() - started
    for box in hosts:
        print(f"{box.name} up: {' '.join(box.ssh_argv())}")
    print(f"{len(hosts)} sandbox host(s) up in {took:.1f}s")


def _down(fleet: Fleet, args: argparse.Namespace) -> None:
    names = fleet.down()
    if args.all:
        print(f"stopped {len(stop_all())} other sandbox(es)")
    print(f"stopped {', '.join(names) or 'nothing (no sandbox host)'}")


def _restart(fleet: Fleet, args: argparse.Namespace) -> None:
    started = time.monotonic()
    box = fleet.restart(args.host)
    print(f"{box.name} restarted in {time.monotonic() - started:.1f}s")


def _destroy(fleet: Fleet, _args: argparse.Namespace) -> None:
    names = fleet.destroy()
    print(f"destroyed {', '.join(names) or 'nothing'}; the rootfs {fleet.rootfs} stays")


def _status(fleet: Fleet, _args: argparse.Namespace) -> None:
    rows = fleet.status()
    for name, status in rows:
        print(f"{name}: {status}")
    if not rows:
        print("no sandbox hosts yet: `make sandbox-up` (SANDBOX_HOSTS=N) starts them")


def _ssh_config(fleet: Fleet, args: argparse.Namespace) -> None:
    hosts = [fleet.host(args.host)] if args.host else fleet.hosts()
    print("\n".join(box.ssh_config() for box in hosts), end="")


def _ssh(fleet: Fleet, args: argparse.Namespace) -> None:
    remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
    os.execvp("ssh", [*fleet.host(args.host).ssh_argv(), *remote])


COMMANDS: dict[str, Callable[[Fleet, argparse.Namespace], None]] = {
    "build": _build,
    "up": _up,
    "down": _down,
    "restart": _restart,
    "destroy": _destroy,
    "status": _status,
    "ssh-config": _ssh_config,
    "ssh": _ssh,
}


def main(argv: list[str] | None = None) -> int:
    """Run one sandbox command; return the exit status."""
    args = _parser().parse_args(argv)
    if os.geteuid() != 0 and args.command in ROOT_ONLY:
        print("The sandbox needs root (debootstrap, namespaces, mounts).", file=sys.stderr)
        return 1
    fleet = Fleet()
    try:
        COMMANDS[args.command](fleet, args)
    except SandboxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
