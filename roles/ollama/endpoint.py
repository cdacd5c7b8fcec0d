"""What the Ollama role serves, as the roles that use it need it (deploy.py hands it over)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from roles.base import local_address


@dataclass(frozen=True)
class OllamaServer:
    """The address, models, context window and keep-alive of the Ollama server on a host."""

    url: str  # reachable from the host itself, e.g. http://127.0.0.1:11434
    models: tuple[str, ...]  # ollama_models: the main model first, then the background one
    context_length: int
    keep_alive: str

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> OllamaServer:
        """What a server configured by ``data`` (the role's ``ollama_*`` keys) serves."""
        return cls(
            url=f"http://{local_address(str(data['ollama_bind']))}:{data['ollama_port']}",
            models=tuple(str(model) for model in data["ollama_models"]),
            context_length=int(data["ollama_context_length"]),
            keep_alive=str(data["ollama_keep_alive"]),
        )
