"""Host-side helpers: clean environment, /proc scans, stopping processes, mount cleanup, locks."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import SandboxError

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the sandbox reports progress with: a callable taking one line (`print` by default).
Log = Callable[[str], object]


def clean_env() -> dict[str, str]:
    """Return the environment for commands touching the rootfs (`env -i PATH=... HOME=/root`).

    The control machine exports SSL_CERT_FILE, REQUESTS_CA_BUNDLE, PIP_CERT, proxies...; inside
    the rootfs those point at nothing or at the wrong bundle.
    """
    return {"PATH": PATH, "HOME": "/root"}


def cmdline(pid: int) -> list[str]:
    """Return a process's argv, or [] when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def is_alive(pid: int) -> bool:
    """Tell whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def find_processes(*needles: str) -> list[int]:
    """Return live pids whose argv contains every needle (as a substring of some argument)."""
    found = []
    for pid in _pids():
        argv = cmdline(pid)
        matches = argv and all(any(n in a for a in argv) for n in needles)
        if pid != os.getpid() and matches and is_alive(pid):
            found.append(pid)
    return found


def children(pid: int) -> list[int]:
    """Return the direct children of `pid`."""
    kids = []
    for child in _pids():
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(child)
    return kids


def pid_namespace(pid: int) -> str | None:
    """Return the `pid:[inode]` namespace id of a process, or None when it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def pids_in_namespace(namespace: str) -> list[int]:
    """Return every host pid living in the given PID namespace."""
    return [pid for pid in _pids() if pid_namespace(pid) == namespace and is_alive(pid)]


def kill(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Send `sig` to `pid` unless it is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pids: list[int], timeout: float = 10, *, strict: bool = False) -> bool:
    """Wait until none of `pids` lives; False after `timeout` seconds (`strict`: raise)."""
    deadline = time.monotonic() + timeout
    while any(is_alive(p) for p in pids):
        if time.monotonic() > deadline:
            if strict:
                raise SandboxError(f"Sandbox processes {[p for p in pids if is_alive(p)]} survive.")
            return False
        time.sleep(0.05)
    return True


def pidfile_process(pid_path: Path, needle: str) -> int | None:
    """Return the live pid a pid file names while its argv still contains `needle`, else None."""
    try:
        pid = int(pid_path.read_text())
    except (OSError, ValueError):
        return None
    if is_alive(pid) and any(needle in arg for arg in cmdline(pid)):
        return pid
    return None


def stop_pidfile(
    pid_path: Path, needle: str, sig: signal.Signals = signal.SIGKILL, *, strict: bool = True
) -> None:
    """Stop the process a pid file names (see `pidfile_process`) with `sig`, wait up to 10 s for
    it to go (`strict`: raise if it does not), then delete the pid file."""
    pid = pidfile_process(pid_path, needle)
    if pid is not None:
        kill(pid, sig)
        wait_gone([pid], strict=strict)
    pid_path.unlink(missing_ok=True)


def mounts_under(path: Path) -> list[str]:
    """Return mount points at or below `path` in this mount namespace, deepest first."""
    prefix = str(path.absolute()).rstrip("/")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def unmount_under(path: Path) -> list[str]:
    """Unmount everything at or below `path` (lazily as a fallback); return what was unmounted."""
    done = []
    for point in mounts_under(path):
        if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        done.append(point)
    left = mounts_under(path)
    if left:
        raise SandboxError(f"Could not unmount {left}; check `grep {path} /proc/mounts`.")
    return done


@contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
