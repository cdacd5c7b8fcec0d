"""Which engine serves the model on a host: host data ``engine``, "ollama" (default) or
"llamacpp"; ``deploy_engine`` runs that engine's role and returns what it serves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyinfra.api.exceptions import DeployError
from pyinfra.context import host

from roles.llamacpp import LlamaServer, deploy_llamacpp
from roles.ollama import OllamaServer, deploy_ollama
from roles.services import Manager

ENGINES = ("ollama", "llamacpp")
DEFAULT_ENGINE = "ollama"


def engine_name(value: object, host_name: str = "host") -> str:
    """A host's engine from its data ``engine`` (``value``), refused with a sentence unless a
    known one."""
    engine = str(value or DEFAULT_ENGINE)
    if engine not in ENGINES:
        raise DeployError(
            f"{host_name}: engine = {engine!r} is not an engine; use one of: {', '.join(ENGINES)}."
        )
    return engine


def served(data: Mapping[str, Any]) -> OllamaServer | LlamaServer:
    """What the engine of a host with ``data`` (role defaults applied) serves, seen from the
    control machine (no GPU seen: llama-server's window from the default profile)."""
    if engine_name(data.get("engine")) == "llamacpp":
        return LlamaServer.from_data(data)
    return OllamaServer.from_data(data)


def deploy_engine(manager: Manager) -> OllamaServer | LlamaServer:
    """Deploy this host's engine role; return its server (URL, models, context)."""
    if engine_name(host.data.get("engine"), host.name) == "llamacpp":
        return deploy_llamacpp(manager)
    return deploy_ollama(manager)
