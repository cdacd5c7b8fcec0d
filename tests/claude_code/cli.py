"""Run the pinned Claude Code CLI (node_modules/.bin/claude, see package.json) non-interactively.

Verified with @anthropic-ai/claude-code 2.1.328 as root: no login prompt, no onboarding, no
traffic other than to ``base_url``, and tools (Write, Bash, ...) run without permission prompts.

- A fresh temporary HOME per run (removed afterwards), so no ~/.claude config or credentials leak
  in or out; the process environment is built from scratch (only PATH/LANG/TMPDIR inherited), so a
  developer's ANTHROPIC_* variables never leak into a test either.
- ``ANTHROPIC_AUTH_TOKEN`` is sent as ``Authorization: Bearer <token>``; ANTHROPIC_API_KEY is unset.
- ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (+ the individual DISABLE_* switches) turns off
  telemetry, error reporting, the auto-updater and the ``HEAD /api/hello`` preconnect.
- ``--permission-mode bypassPermissions`` refuses to run as root ("--dangerously-skip-permissions
  cannot be used with root/sudo privileges") unless ``IS_SANDBOX=1`` is set, so both are set.
  (``--allowedTools Write`` also works as root without IS_SANDBOX, but only for the listed tools.)
- ``-p`` (print mode) with stdin closed: the CLI prints the final assistant text and exits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLAUDE_BIN = os.path.join(REPO_ROOT, "node_modules", ".bin", "claude")

# Environment every run gets (base_url/token/HOME are added per call).
BASE_ENV: dict[str, str] = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_BUG_COMMAND": "1",
    "IS_SANDBOX": "1",
    "CI": "1",
    "NO_COLOR": "1",
    "TERM": "dumb",
}

# Flags every run gets, before extra_args and the prompt.
BASE_ARGS: tuple[str, ...] = ("-p", "--permission-mode", "bypassPermissions")

_INHERITED = ("PATH", "LANG", "LC_ALL", "TMPDIR")


def claude_available() -> bool:
    return os.access(CLAUDE_BIN, os.X_OK)


def build_env(
    base_url: str, token: str, home: str, extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(BASE_ENV)
    env["HOME"] = home
    env["ANTHROPIC_BASE_URL"] = base_url
    env["ANTHROPIC_AUTH_TOKEN"] = token
    if extra_env:
        env.update(extra_env)
    return env


def run_claude(
    prompt: str,
    base_url: str,
    token: str,
    cwd: str,
    extra_env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run ``claude -p <prompt>`` against ``base_url`` and return the finished process.

    ``stdout`` is the final answer (or JSON with ``extra_args=("--output-format", "json")``).
    ``extra_env`` overrides/extends the environment (e.g. ``ANTHROPIC_MODEL``); a value of ""
    is passed through as an empty string. The prompt is passed after ``--`` so variadic
    options in ``extra_args`` (``--allowedTools``, ``--tools``) cannot swallow it.
    Raises ``subprocess.TimeoutExpired`` on timeout, ``FileNotFoundError`` if the CLI is not
    installed (run ``npm install`` in the repo root).
    """
    if not claude_available():
        raise FileNotFoundError(f"{CLAUDE_BIN} missing; run `npm install` in {REPO_ROOT}")
    home = tempfile.mkdtemp(prefix="claude-home-")
    try:
        env = build_env(base_url, token, home, extra_env)
        cmd = [CLAUDE_BIN, *BASE_ARGS, *extra_args, "--", prompt]
        return subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
