"""CLI: `python -m sandbox {build,up,down,destroy,status,ssh-config,ssh}` (run as root).

Environment: SANDBOX_STATE_DIR (default <repo>/.sandbox), SANDBOX_ROOTFS (default
/var/cache/llm-selfhost/bookworm-rootfs), SANDBOX_DATA_DIR (container layer), SANDBOX_SSH_PORT,
SANDBOX_MIRROR (default: this machine's apt mirror).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .errors import SandboxError
from .host import Sandbox, stop_all
from .rootfs import build_rootfs


def main(argv: list[str] | None = None) -> int:
    """Run one sandbox command; return the exit status (status: 0 running, 3 stopped)."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the cached rootfs if missing or stale")
    build.add_argument("--force", action="store_true", help="rebuild even if current")
    commands.add_parser("up", help="start the sandbox (idempotent), building the rootfs if needed")
    down = commands.add_parser("down", help="stop it: no processes, no mounts left")
    down.add_argument("--all", action="store_true", help="stop every sandbox on this machine")
    commands.add_parser("destroy", help="down, then delete the container layer (rootfs stays)")
    commands.add_parser("status", help="print running/stopped (exit 0/3)")
    commands.add_parser("ssh-config", help="print the OpenSSH config block")
    ssh = commands.add_parser("ssh", help="ssh into the sandbox, optionally running a command")
    ssh.add_argument("remote", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if os.geteuid() != 0 and args.command not in ("status", "ssh-config", "ssh"):
        print("The sandbox needs root (debootstrap, namespaces, mounts).", file=sys.stderr)
        return 1
    sandbox = Sandbox()
    try:
        if args.command == "build":
            if not build_rootfs(force=args.force):
                print(f"{sandbox.rootfs} is current")
        elif args.command == "up":
            started = time.monotonic()
            sandbox.up()
            took = time.monotonic() - started
            print(f"sandbox up in {took:.1f}s: {' '.join(sandbox.ssh_argv())}")
        elif args.command == "down":
            if args.all:
                print(f"stopped {len(stop_all())} sandbox(es)")
            sandbox.down()
            print("sandbox stopped")
        elif args.command == "destroy":
            sandbox.destroy()
            print(f"sandbox stopped; removed {sandbox.data_dir}")
        elif args.command == "status":
            status = sandbox.status()
            print(status)
            return 0 if status.startswith("running") else 3
        elif args.command == "ssh-config":
            print(sandbox.ssh_config(), end="")
        elif args.command == "ssh":
            remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
            os.execvp("ssh", [*sandbox.ssh_argv(), *remote])
    except SandboxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
