"""The proxy's Ollama settings: its own ``proxy_*`` keys, else what the Ollama role serves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyinfra.api.exceptions import DeployError

from roles.ollama.endpoint import OllamaServer


def backend_settings(data: Mapping[str, Any], ollama: OllamaServer) -> dict[str, object]:
    """The ``PROXY_*`` Ollama settings: each ``proxy_*`` value, else what ``ollama`` serves.

    + data: the host's data (the role's ``proxy_*`` keys)
    + ollama: the Ollama role's result; its first model is the default, its second (if any)
      the background model
    """
    default_model = data["proxy_default_model"] or (ollama.models[0] if ollama.models else "")
    if not default_model:
        raise DeployError(
            "proxy_default_model is empty and ollama_models names no model; set one of them."
        )
    background = data["proxy_background_model"]
    if background is None:
        background = ollama.models[1] if len(ollama.models) > 1 else ""
    return {
        "PROXY_OLLAMA_URL": data["proxy_ollama_url"] or ollama.url,
        "PROXY_DEFAULT_MODEL": default_model,
        "PROXY_NUM_CTX": data["proxy_num_ctx"] or ollama.context_length,
        "PROXY_KEEP_ALIVE": data["proxy_keep_alive"] or ollama.keep_alive,
        "PROXY_BACKGROUND_MODEL": background,
    }
