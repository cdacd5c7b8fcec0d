"""Custom facts: what Ollama serves, whether a URL answers, what supervisord runs.

Each fact answers with its default when the tool or the server is not there yet, so the
prepare stage of a first run sees "nothing installed" instead of failing the host.
Operation bodies run again at execute time, so operations reading these facts see the
live state (e.g. the models present *after* the server was started).
"""

from __future__ import annotations

import json
import re

from pyinfra.api.facts import FactBase

# The spelling /api/tags uses (`qwen2.5-coder` -> `qwen2.5-coder:latest`): proxy_app's own rule,
# a pure function (proxy_app never imports pyinfra), so the deploy and the proxy agree on it.
from proxy_app.engines.ollama import canonical_name

SUPERVISOR_CONF = "/etc/supervisor/supervisord.conf"


class OllamaModels(FactBase[list[str]]):
    """
    Models the Ollama server at ``url`` has, from ``/api/tags``; ``[]`` when it is not up.

    .. code:: python

        ["qwen2.5-coder:7b", "llama3.2:latest"]
    """

    def command(self, url: str) -> str:
        return f"curl -fsS --max-time 5 {url}/api/tags 2>/dev/null || true"

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        try:
            tags = json.loads("\n".join(output))
        except ValueError:
            return []
        return sorted(canonical_name(m["name"]) for m in tags.get("models") or [])


class HttpAnswers(FactBase[bool]):
    """
    Whether ``url`` answers a GET with a 2xx status within 3 seconds.

    .. code:: python

        True
    """

    def command(self, url: str) -> str:
        return f"curl -fsS -o /dev/null --max-time 3 {url} 2>/dev/null && echo yes || echo no"

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output: list[str]) -> bool:
        return output[-1].strip() == "yes"


class OllamaVersion(FactBase[str]):
    """
    Version printed by ``<binary> -v``; ``""`` when the binary is missing.

    .. code:: python

        "0.32.7"
    """

    def command(self, binary: str) -> str:
        return f"[ -x {binary} ] && {binary} -v 2>&1 || true"

    @staticmethod
    def default() -> str:
        return ""

    def process(self, output: list[str]) -> str:
        found = re.findall(r"(\d+\.\d+\.\d+\S*)", "\n".join(output))
        return found[-1] if found else ""


class SupervisorPrograms(FactBase[dict[str, str] | None]):
    """
    Program name -> state from ``supervisorctl status``; ``None`` while supervisord is down.

    .. code:: python

        {"ollama": "RUNNING", "redis": "BACKOFF"}
    """

    def command(self) -> str:
        return (
            "command -v supervisorctl >/dev/null || { echo rc=127; exit 0; }; "
            f'supervisorctl -c {SUPERVISOR_CONF} status 2>&1; echo "rc=$?"'
        )

    @staticmethod
    def default() -> None:
        return None

    def process(self, output: list[str]) -> dict[str, str] | None:
        # supervisorctl exits 4 when it cannot reach supervisord, 3 when a program is not running.
        if not output or output[-1].strip() in ("rc=4", "rc=2", "rc=127"):
            return None
        states: dict[str, str] = {}
        for line in output[:-1]:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isupper():
                states[parts[0].split(":")[-1]] = parts[1]
        return states


class InitScriptRunning(FactBase[bool]):
    """
    Whether ``/etc/init.d/<script> status`` reports the daemon running (e.g. one that a
    package's postinst started on a host without systemd).

    .. code:: python

        False
    """

    def command(self, script: str) -> str:
        return (
            f"[ -x /etc/init.d/{script} ] && /etc/init.d/{script} status >/dev/null 2>&1 "
            "&& echo yes || echo no"
        )

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output: list[str]) -> bool:
        return output[-1].strip() == "yes"


class GpuMemory(FactBase[int]):
    """
    Total memory of the host's NVIDIA GPUs in MiB, from ``nvidia-smi``; 0 without one.

    .. code:: python

        24564
    """

    def command(self) -> str:
        return (
            "nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null "
            "|| true"
        )

    @staticmethod
    def default() -> int:
        return 0

    def process(self, output: list[str]) -> int:
        return sum(int(line.strip()) for line in output if line.strip().isdigit())
