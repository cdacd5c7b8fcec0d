"""The proxy's engine settings: its own ``proxy_*`` keys, else what the host's engine serves
(the Ollama role's `OllamaServer` or the llamacpp role's `LlamaServer`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyinfra.api.exceptions import DeployError

from roles.llamacpp.endpoint import LlamaServer
from roles.ollama.endpoint import OllamaServer


def backend_settings(
    data: Mapping[str, Any], engine: OllamaServer | LlamaServer
) -> dict[str, object]:
    """The ``PROXY_*`` engine settings: each ``proxy_*`` value, else what ``engine`` serves.

    + data: the host's data (the role's ``proxy_*`` keys)
    + engine: the engine role's result. Ollama: its first model is the default, its second (if
      any) the background model. llama-server: its one model (``llamacpp_model_name``), through
      its OpenAI-compatible API (PROXY_ENGINE=openai), no background model.
    """
    served: tuple[str, ...]
    if isinstance(engine, LlamaServer):
        served, kind, keep_alive = (engine.model,), "openai", ""
    else:
        served, kind, keep_alive = engine.models, "ollama", engine.keep_alive
    default_model = data["proxy_default_model"] or (served[0] if served else "")
    if not default_model:
        raise DeployError(
            "proxy_default_model is empty and ollama_models names no model; set one of them."
        )
    background = data["proxy_background_model"]
    if background is None:
        background = served[1] if len(served) > 1 else ""
    settings: dict[str, object] = {
        "PROXY_ENGINE": kind,
        "PROXY_ENGINE_URL": data["proxy_engine_url"] or data["proxy_ollama_url"] or engine.url,
        "PROXY_DEFAULT_MODEL": default_model,
        "PROXY_NUM_CTX": data["proxy_num_ctx"] or engine.context_length,
        "PROXY_BACKGROUND_MODEL": background,
    }
    if data["proxy_keep_alive"] or keep_alive:  # llama-server has no keep-alive
        settings["PROXY_KEEP_ALIVE"] = data["proxy_keep_alive"] or keep_alive
    return settings
