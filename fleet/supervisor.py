"""Keep commands running: one thread per command re-starts it within seconds when it exits.

The gateway runs one ``ssh -N -L …`` per host under a Supervisor; a tunnel that drops (ssh
killed, the host restarted, keep-alives unanswered) is re-opened after ``RESTART_DELAY`` seconds,
backing off to ``MAX_RESTART_DELAY`` while it keeps failing at once.

    with Supervisor({"sandbox-1": argv1, "sandbox-2": argv2}) as tunnels:
        tunnels.restarts["sandbox-1"]          # how many times it was re-started
        tunnels.add("vast-7", argv3)           # one more, while it runs (the autoscaler)
        tunnels.remove("sandbox-2")            # ended, and not re-started
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 5.0
# A command that ran this long before exiting failed for a new reason: back to the short delay.
STABLE_AFTER = 30.0


class Supervisor:
    """Runs each named command, re-starting it whenever it exits, until :meth:`stop`."""

    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        log: TextIO | None = None,
        output_dir: Path | None = None,
    ) -> None:
        self.commands = {name: list(argv) for name, argv in commands.items()}
        self.log = log or sys.stderr
        # Each command's stderr goes to <output_dir>/<name>.log (ssh reports every refused
        # forward there); its last line is quoted when the command exits.
        self.output_dir = output_dir
        self.restarts = dict.fromkeys(self.commands, 0)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._removed: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._threads = [self._thread(name) for name in self.commands]
        self._started = False

    def _thread(self, name: str) -> threading.Thread:
        self._removed[name] = threading.Event()
        return threading.Thread(target=self._keep, args=(name,), name=f"tunnel-{name}", daemon=True)

    def start(self) -> Supervisor:
        self._started = True
        for thread in self._threads:
            thread.start()
        return self

    def add(self, name: str, argv: Sequence[str]) -> None:
        """Run one more command under supervision (started at once if the supervisor runs)."""
        with self._lock:
            if name in self.commands and not self._removed[name].is_set():
                raise ValueError(f"{name} is already supervised")
            self.commands[name] = list(argv)
            self.restarts[name] = 0
            thread = self._thread(name)
            self._threads.append(thread)
        if self._started:
            thread.start()

    def remove(self, name: str) -> None:
        """Stop supervising `name` and terminate its command."""
        with self._lock:
            if name not in self._removed:
                return
            self._removed[name].set()
            proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _ended(self, name: str) -> bool:
        return self._stopping.is_set() or self._removed[name].is_set()

    def pid(self, name: str) -> int | None:
        """The process id of the command running for ``name`` now (None between restarts)."""
        with self._lock:
            proc = self.procs.get(name)
        return proc.pid if proc is not None and proc.poll() is None else None

    def _keep(self, name: str) -> None:
        delay = RESTART_DELAY
        while not self._ended(name):
            started = time.monotonic()
            with self._lock:
                if self._ended(name):
                    return
                proc = self._spawn(name)
                self.procs[name] = proc
            status = proc.wait()
            if self._ended(name):
                return
            delay = RESTART_DELAY if time.monotonic() - started > STABLE_AFTER else delay
            print(
                f"{name}: tunnel exited with status {status}{self._last_words(name)}; "
                f"re-opening it in {delay:g} s.",
                file=self.log,
                flush=True,
            )
            if self._stopping.wait(delay) or self._removed[name].is_set():
                return
            self.restarts[name] += 1
            delay = min(delay * 2, MAX_RESTART_DELAY)

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        if self.output_dir is None:
            return subprocess.Popen(self.commands[name], stdin=subprocess.DEVNULL)
        with (self.output_dir / f"{name}.log").open("ab") as stderr:
            return subprocess.Popen(self.commands[name], stdin=subprocess.DEVNULL, stderr=stderr)

    def _last_words(self, name: str) -> str:
        """`` (<last line of its stderr>)`` when there is one."""
        if self.output_dir is None:
            return ""
        try:
            lines = (self.output_dir / f"{name}.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        said = [line.strip() for line in lines if line.strip()]
        return f" ({said[-1]})" if said else ""

    def stop(self) -> None:
        """Stop re-starting and terminate every command."""
        self._stopping.set()
        with self._lock:
            procs = list(self.procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)

    def __enter__(self) -> Supervisor:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
