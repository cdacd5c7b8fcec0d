"""devkit/progress.py: one line per step with its duration, the tools' output in the log, the
log's tail on screen when a step fails — and `make deploy` built on it."""

from __future__ import annotations

import os
import pty
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from devkit import progress

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "progress"
REPO = Path(__file__).resolve().parents[2]
STEP_LINE = r"^{name}\s* … (\d+\.\d s|\d+ min \d\d s)(  (?P<note>.*))?$"


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *steps: str) -> tuple[int, str, str]:
    log = tmp_path / "job.log"
    status = progress.main(["--log", str(log), *steps])
    return status, capsys.readouterr().out, log.read_text()


def test_one_line_per_step_in_order_with_its_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, screen, log = run(
        tmp_path,
        capsys,
        "packages=echo 'Reading package lists... Done'",
        "venv=echo 'Successfully installed fastapi'; echo 'pip notice' >&2",
        "rootfs=echo /var/cache/rootfs is current",
    )
    assert status == 0
    lines = screen.splitlines()
    log_name = tmp_path / "job.log"
    assert lines[0] == f"The tools' output goes to {log_name} (shown here only if a step fails)."
    for line, name in zip(lines[1:4], ["packages", "venv", "rootfs"], strict=True):
        assert re.match(STEP_LINE.format(name=name), line), line
    assert lines[3].endswith("  cached")
    assert re.match(r"^All 3 steps done in \d+\.\d s\.$", lines[4])
    assert "Reading package lists" not in screen and "pip notice" not in screen  # noise: log only
    assert log.index("Reading package lists") < log.index("Successfully installed")
    assert "pip notice" in log and "<== rootfs: exit status 0" in log


def test_pyinfra_output_becomes_one_line_per_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The output of a real first deploy (one sandbox host) as pyinfra printed it."""
    fixture = FIXTURES / "pyinfra_first_deploy.txt"
    status, screen, _ = run(tmp_path, capsys, f"deploy=cat {shlex.quote(str(fixture))}")
    assert status == 0
    host_lines = [line for line in screen.splitlines() if line.startswith("    ")]
    assert len(host_lines) == 1
    assert re.match(
        r"^    sandbox-1 ok: 33 changed, 12 unchanged, 0 failed \(\d+\.\d s\)$", host_lines[0]
    )


def test_hosts_are_tallied_apart_and_a_failed_one_says_so() -> None:
    watch = progress.Watch(started=100.0)
    for now, line in enumerate(
        [
            "--> Starting operation: Deploy Ollama | Create the ollama user ",
            "    [vast-22] No changes",
            "    [vast-3] Success",
            "--> Starting operation: Deploy Ollama | Download Ollama 0.32.7 and check its SHA-256 ",
            "    [vast-3] Success",
            "    [vast-22] Error: the SHA-256 of the archive is abc, not def",
        ],
        start=101,
    ):
        watch.feed(line, float(now))
    assert watch.operation == "Deploy Ollama | Download Ollama 0.32.7 and check its SHA-256"
    assert watch.report() == [  # in natural order, not in the order they answered
        "    vast-3  ok: 2 changed, 0 unchanged, 0 failed (5.0 s)",
        "    vast-22 FAILED: 0 changed, 1 unchanged, 1 failed (6.0 s)",
    ]


def test_pytest_summary_is_shown() -> None:
    watch = progress.Watch(started=0.0)
    for line in ["....", "28 passed, 2 deselected in 9.50s"]:
        watch.feed(line, 1.0)
    assert watch.summary == "28 passed, 2 deselected"


def test_a_failed_step_shows_the_logs_tail_and_its_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noisy = "; ".join(f"echo noise {i}" for i in range(100))
    status, screen, log = run(
        tmp_path,
        capsys,
        "first=echo fine",
        f"second={noisy}; echo 'E: Unable to locate package nosuchpkg' >&2; exit 3",
        "third=echo never",
    )
    assert status == 3
    lines = screen.splitlines()
    assert re.match(r"^second … FAILED after \d+\.\d s \(exit status 3\)$", lines[2])
    assert lines[3] == f"--- the last {progress.TAIL_LINES} lines of {tmp_path / 'job.log'} ---"
    tail = lines[4 : 4 + progress.TAIL_LINES]
    assert tail[-1] == "E: Unable to locate package nosuchpkg"
    assert tail[0] == f"noise {100 - progress.TAIL_LINES + 1}"
    assert lines[-1] == f"--- the full output of every step is in {tmp_path / 'job.log'} ---"
    assert "third" not in screen and "never" not in log
    assert "noise 0" in log


def test_durations_read_as_seconds_then_minutes() -> None:
    assert progress.duration(4.24) == "4.2 s"
    assert progress.duration(125.4) == "2 min 05 s"


def test_make_deploy_with_a_broken_inventory_fails_and_shows_why(tmp_path: Path) -> None:
    """The real `make deploy`: the install steps pass (already done here), then pyinfra fails
    on an inventory that raises; the tail names the error and make exits non-zero."""
    inventory = tmp_path / "broken.py"
    inventory.write_text("raise RuntimeError('no hosts for this test')\n")
    log = tmp_path / "deploy.log"
    env = {**os.environ, "INVENTORY": str(inventory), "DEPLOY_LOG": str(log)}
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "deploy"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode != 0
    lines = done.stdout.splitlines()
    names = [line.split(" … ")[0].strip() for line in lines if " … " in line]
    assert names == ["packages", "venv", "Claude Code CLI", "deploy"]
    assert re.match(r"^deploy\s* … FAILED after .* \(exit status [1-9]\d*\)$", lines[4])
    assert any("no hosts for this test" in line for line in lines[5:])
    assert f"the full output of every step is in {log}" in done.stdout
    assert "no hosts for this test" in log.read_text()


def test_on_a_terminal_the_steps_line_is_rewritten_in_place(tmp_path: Path) -> None:
    """With a terminal for stdout the step's line is redrawn (carriage return, erase line) when
    it ends, instead of being continued; the tool's output still goes to the log only."""
    main_fd, terminal_fd = pty.openpty()
    log = tmp_path / "job.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devkit.progress", "--log", str(log), "quick=echo noise"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=terminal_fd,
        stderr=terminal_fd,
    )
    os.close(terminal_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    assert proc.wait(timeout=30) == 0
    screen = b"".join(chunks).decode()
    assert re.search(r"quick …\r\x1b\[Kquick … \d+\.\d s\r\n", screen), repr(screen)
    assert "noise" not in screen and "noise" in log.read_text()


def test_secret_values_never_reach_the_screen_or_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tool that echoes its command line on failure (testinfra does) with a secret in it:
    the value is replaced in the log and in the tail shown — including a secret the job itself
    created in an earlier step, as the deploy creates the secrets folder."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis_password").write_text("pw-Xq7-the-redis-one\n")
    key_file = secrets / "proxy_api_key"
    status = progress.main(
        [
            "--log", str(tmp_path / "job.log"), "--redact-dir", str(secrets),
            f"make secrets=head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \\n' > {key_file}",
            f"checks=echo \"command=b'REDISCLI_AUTH=pw-Xq7-the-redis-one redis-cli'\"; "
            f"echo \"curl -H 'x-api-key: $(cat {key_file})'\"; exit 1",
        ]
    )  # fmt: skip
    created = key_file.read_text().strip()
    assert len(created) == 48
    assert status == 1
    screen, log = capsys.readouterr().out, (tmp_path / "job.log").read_text()
    for text in (screen, log):
        assert "pw-Xq7" not in text and created not in text
        assert "REDISCLI_AUTH=[secret: redis_password] redis-cli" in text
        assert "x-api-key: [secret: proxy_api_key]" in text
