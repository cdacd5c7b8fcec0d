"""Which engine serves the model on a host: host data ``engine``, "ollama" (default) or
"llamacpp"; ``deploy_engine`` runs that engine's role and returns what it serves."""

from __future__ import annotations

from pyinfra.api.exceptions import DeployError
from pyinfra.context import host

from roles.llamacpp import LlamaServer, deploy_llamacpp
from roles.ollama import OllamaServer, deploy_ollama
from roles.services import Manager

ENGINES = ("ollama", "llamacpp")
DEFAULT_ENGINE = "ollama"


def engine_name() -> str:
    """This host's engine (data ``engine``), refused with a sentence unless a known one."""
    engine = str(host.data.get("engine") or DEFAULT_ENGINE)
    if engine not in ENGINES:
        raise DeployError(
            f"{host.name}: engine = {engine!r} is not an engine; use one of: {', '.join(ENGINES)}."
        )
    return engine


def deploy_engine(manager: Manager) -> OllamaServer | LlamaServer:
    """Deploy this host's engine role; return its server (URL, models, context)."""
    if engine_name() == "llamacpp":
        return deploy_llamacpp(manager)
    return deploy_ollama(manager)
