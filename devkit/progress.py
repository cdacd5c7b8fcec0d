"""Run a long job's steps with one line each on screen and the tools' output in a log file.

    python3 -m devkit.progress --log deploy.log "packages=make apt" "venv=make venv" …

Each argument is ``NAME=SHELL COMMAND``. The steps run in order through ``sh -c``; everything
they print goes to the log (truncated first, named on screen). The screen gets one line per step
with its duration, plus what the step's tool reports: for ``pyinfra`` one line per host (its
operations changed, unchanged and failed, and when that host finished), for ``pytest`` its
summary, for ``python -m sandbox build`` whether the rootfs was cached. On a terminal the line
counts the seconds (and names pyinfra's current operation) while the step runs, so a slow step
never looks hung. When a step fails its last lines are shown with the log's name, and the exit
status is the step's. With ``--redact-dir`` the value of each one-line file there (the deploy's
secrets) is replaced before anything is written. Stdlib only: it runs before the venv exists
(it is what makes the venv).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

TAIL_LINES = 40
PYINFRA_HOST_LINE = re.compile(r"^\s*\[(?P<host>[^\]]+)\] (?P<status>Success|No changes|Error)")
PYINFRA_OPERATION = re.compile(r"^--> Starting operation: (?P<name>.+?)\s*$")
PYTEST_SUMMARY = re.compile(r"^=*\s*(?P<summary>\d+ (passed|failed|error|skipped|deselected).*?)"
                            r"(?: in [\d.]+s.*)?\s*=*$")  # fmt: skip


def duration(seconds: float) -> str:
    """``4.2 s`` below a minute, ``2 min 05 s`` above."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


@dataclass
class HostTally:
    """One pyinfra host's operations so far."""

    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    finished: float = 0.0

    def line(self, name: str, width: int) -> str:
        state = "FAILED" if self.failed else "ok"
        return (
            f"    {name:<{width}} {state}: {self.changed} changed, {self.unchanged} unchanged, "
            f"{self.failed} failed ({duration(self.finished)})"
        )


@dataclass
class Watch:
    """What the screen learns from a step's output, line by line."""

    started: float
    hosts: dict[str, HostTally] = field(default_factory=dict)
    operation: str = ""
    summary: str = ""
    lines: list[str] = field(default_factory=list)

    def feed(self, line: str, now: float) -> None:
        self.lines.append(line)
        del self.lines[:-TAIL_LINES]
        if match := PYINFRA_OPERATION.match(line):
            self.operation = match["name"]
        elif match := PYINFRA_HOST_LINE.match(line):
            tally = self.hosts.setdefault(match["host"], HostTally())
            status = match["status"]
            if status == "Success":
                tally.changed += 1
            elif status == "No changes":
                tally.unchanged += 1
            else:
                tally.failed += 1
            tally.finished = now - self.started
        elif match := PYTEST_SUMMARY.match(line.strip()):
            self.summary = match["summary"].strip(" =")
        elif line.endswith(" is current"):  # `python -m sandbox build` with the rootfs cached
            self.summary = "cached"

    def report(self) -> list[str]:
        """The lines printed under the step's own line when it ends, hosts in natural order
        (pyinfra reports them in whatever order they answer)."""
        width = max((len(name) for name in self.hosts), default=0)
        names = sorted(self.hosts, key=_natural)
        return [self.hosts[name].line(name, width) for name in names]


def _natural(name: str) -> list[Any]:
    """``sandbox-10`` after ``sandbox-9``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class Screen:
    """The user's terminal: one line per step, rewritten each second when it is a terminal."""

    def __init__(self, out: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.live = out.isatty()
        self._lock = threading.Lock()
        self._current = ""

    def begin(self, label: str) -> None:
        with self._lock:
            self._current = label
            self.out.write(f"{label} …")
            self.out.flush()

    def tick(self, seconds: float, detail: str) -> None:
        if not self.live:
            return
        with self._lock:
            text = f"{self._current} … {duration(seconds)}" + (f"  {detail}" if detail else "")
            self.out.write("\r\033[K" + text[:160])
            self.out.flush()

    def end(self, result: str) -> None:
        with self._lock:
            prefix = f"\r\033[K{self._current} …" if self.live else ""
            self.out.write(f"{prefix} {result}\n")
            self.out.flush()

    def say(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()


class Secrets:
    """Values to keep off the screen and out of the log: each one-line file in a folder.

    A safety net, for tools that echo a command line when they fail (testinfra does): every
    occurrence becomes ``[secret: NAME]``. Read again before each step, since the deploy
    creates the folder's files.
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.values: dict[str, str] = {}

    def reload(self) -> None:
        if self.folder is None or not self.folder.is_dir():
            return
        for path in sorted(self.folder.rglob("*")):
            try:
                text = path.read_text().strip() if path.is_file() else ""
            except (OSError, UnicodeDecodeError):
                continue
            if len(text) >= 8 and "\n" not in text:
                self.values[text] = f"[secret: {path.relative_to(self.folder)}]"

    def hide(self, line: str) -> str:
        for value, name in self.values.items():
            line = line.replace(value, name)
        return line


def run_step(
    name: str, command: str, log: IO[str], screen: Screen, width: int, secrets: Secrets
) -> int:
    """Run one step, copying its output to ``log``; return its exit status."""
    secrets.reload()
    started = screen.clock()
    watch = Watch(started)
    log.write(secrets.hide(f"\n==> {name}: {command}\n"))
    log.flush()
    screen.begin(f"{name:<{width}}")
    proc = subprocess.Popen(
        ["sh", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
    )
    stop = threading.Event()

    def ticker() -> None:
        while not stop.wait(1.0):
            screen.tick(screen.clock() - started, watch.operation)

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        line = secrets.hide(line)
        log.write(line)
        watch.feed(line.rstrip("\n"), screen.clock())
    status = proc.wait()
    stop.set()
    thread.join()
    log.write(f"<== {name}: exit status {status}\n")
    log.flush()
    took = duration(screen.clock() - started)
    if status != 0:
        screen.end(f"FAILED after {took} (exit status {status})")
        screen.say(f"--- the last {len(watch.lines)} lines of {log.name} ---")
        for line in watch.lines:
            screen.say(line)
        screen.say(f"--- the full output of every step is in {log.name} ---")
        return status
    screen.end(took + (f"  {watch.summary}" if watch.summary else ""))
    for line in watch.report():
        screen.say(line)
    return 0


def parse_step(text: str) -> tuple[str, str]:
    """``NAME=COMMAND`` → (name, command)."""
    name, sep, command = text.partition("=")
    if not sep or not name.strip() or not command.strip():
        raise argparse.ArgumentTypeError(f"a step is NAME=COMMAND, not {text!r}")
    return name.strip(), command.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m devkit.progress", description=__doc__)
    parser.add_argument("--log", required=True, type=Path, help="file for the tools' output")
    parser.add_argument(
        "--redact-dir", type=Path, help="folder of secrets to replace by [secret: NAME] in output"
    )
    parser.add_argument("steps", nargs="+", type=parse_step, metavar="NAME=COMMAND")
    args = parser.parse_args(argv)
    secrets = Secrets(args.redact_dir)
    screen = Screen(sys.stdout)
    width = max(len(name) for name, _ in args.steps)
    started = screen.clock()
    with args.log.open("w", encoding="utf-8") as log:
        screen.say(f"The tools' output goes to {args.log} (shown here only if a step fails).")
        for name, command in args.steps:
            status = run_step(name, command, log, screen, width, secrets)
            if status != 0:
                return status
    steps = f"{len(args.steps)} step" + ("s" if len(args.steps) != 1 else "")
    screen.say(f"All {steps} done in {duration(screen.clock() - started)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
