"""Claude Code's environment for a deployed proxy_app, and the lines a shell evaluates.

The key is the deploy's `secrets/proxy_api_key` on this machine (the deploy creates it, never
this); the context window is the one the deploy gives proxy_app, through the same rule
(`roles/proxy/settings.py`: an empty ``proxy_*`` key follows the Ollama role).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyinfra.api.exceptions import DeployError

from fleet.errors import TunnelError
from roles.engine import served
from roles.proxy.settings import backend_settings
from roles.secrets import secrets_dir

# Unset, so the printed environment is exactly what `claude` runs with: an API key (Claude Code
# would send it instead of the token), and what earlier printouts (and the README before
# 2026-11-30) set. Those model variables made Claude Code log
# `[claude-code:unrecognized_model]` on every run, and CLAUDE_CODE_AUTO_COMPACT_WINDOW below
# 100k only produced a warning (Claude Code reads it as its 100k minimum).
STALE = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "CLAUDE_CODE_AUTO_COMPACT_WINDOW",
)


def proxy_key_file() -> Path:
    """The absolute path of the key proxy_app accepts (the deploy creates it, never this)."""
    path = (secrets_dir() / "proxy_api_key").absolute()
    try:
        present = bool(path.read_text().strip())
    except OSError:
        present = False
    if not present:
        raise TunnelError(f"{path} is missing; deploy first (the deploy creates the proxy key).")
    return path


def proxy_key() -> str:
    """The key proxy_app accepts, from the control machine's secrets folder."""
    return proxy_key_file().read_text().strip()


def key_if_deployed() -> str | None:
    """The proxy key, or None before the first deploy."""
    try:
        return proxy_key()
    except TunnelError:
        return None


def context_window(data: Mapping[str, Any]) -> int:
    """The context window the deploy gives proxy_app on a host with ``data`` (its PROXY_NUM_CTX)."""
    try:
        settings = backend_settings(data, served(data))
    except DeployError as exc:
        raise TunnelError(str(exc)) from exc
    return int(str(settings["PROXY_NUM_CTX"]))


def claude_env(
    data: Mapping[str, Any], local_port: int, token: str | Path
) -> dict[str, str | Path]:
    """Claude Code's environment for the tunnel: only what changes its behaviour.

    ``token`` is the key itself, or (as ``python -m fleet.tunnel`` passes it) the file holding
    it, which :func:`render` prints as ``"$(cat FILE)"`` so the key never reaches the screen.
    No model variables: Claude Code's own ids (claude-opus-5-5, claude-haiku-5-5 for background
    work) are recognised, assume the same 1M window as an unknown id and make the same requests;
    proxy_app serves every ``claude-*`` id with ``proxy_default_model`` (docs/proxy_app.md).
    """
    window = context_window(data)
    return {
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{local_port}",
        "ANTHROPIC_AUTH_TOKEN": token,
        # Claude Code caps a Read at 25k tokens: more than a 32k window leaves after its ~11k
        # of system prompt and tools, and no compaction can save that turn. A quarter fits.
        "CLAUDE_CODE_FILE_READ_MAX_OUTPUT_TOKENS": str(window // 4),
        # No telemetry, error reports or update checks to Anthropic from a self-hosted setup.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def render(
    command: Sequence[str], env: Mapping[str, str | Path], show_secrets: bool = False
) -> str:
    """The text printed: the tunnel command, then shell lines setting Claude Code's env.

    A value that is a Path is a secret file: printed as ``"$(cat FILE)"``, or its content with
    ``show_secrets``.
    """
    lines = ["# 1. Open the tunnel (keep it running):", shlex.join(command), ""]
    lines.append("# 2. In the shell that runs `claude`:")
    lines += env_lines(env, show_secrets)
    return "\n".join(lines) + "\n"


def env_lines(env: Mapping[str, str | Path], show_secrets: bool = False) -> list[str]:
    """Shell lines that give Claude Code ``env`` and drop what older printouts set.

    A value that is a Path is a secret file: ``"$(cat FILE)"``, or its content with
    ``show_secrets``.
    """
    lines = [f"unset {' '.join(STALE)}"]
    for key, value in env.items():
        if isinstance(value, Path) and not show_secrets:
            lines.append(f'export {key}="$(cat {shlex.quote(str(value))})"')
        else:
            text = value.read_text().strip() if isinstance(value, Path) else value
            lines.append(f"export {key}={shlex.quote(text)}")
    return lines


def parse_exports(text: str) -> dict[str, str]:
    """The values :func:`render`'s ``export`` lines give, as ``sh`` evaluates them (secret files
    read), in a minimal environment."""
    lines = [line for line in text.splitlines() if line.startswith(("export ", "unset "))]
    keys = [line[len("export ") :].partition("=")[0] for line in lines if line[0] == "e"]
    script = "\n".join([*lines, *(f'printf "%s\\0" "${key}"' for key in keys)])
    done = subprocess.run(
        ["sh", "-c", script],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(zip(keys, done.stdout.split("\0")[: len(keys)], strict=True))
