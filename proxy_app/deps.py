"""Resources built in the lifespan, injected into routes (tests may override them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from proxy_app.cache.store import ResponseCache
from proxy_app.checks import Checks
from proxy_app.config import Settings
from proxy_app.engines import Catalog
from proxy_app.engines.ollama_engine import OllamaEngine
from proxy_app.generation import Backend
from proxy_app.metrics import Metrics
from proxy_app.offload import Offload
from proxy_app.tokens import TokenCounter


@dataclass
class Services:
    settings: Settings
    backend: Backend  # the engine (Ollama or an OpenAI-compatible server) and its catalog
    metrics: Metrics
    cache: ResponseCache  # disabled (never touches Redis) when PROXY_REDIS_URL is empty
    checks: Checks  # /health's dependency checks, at most once a second each

    @property
    def offload(self) -> Offload:
        return self.backend.offload

    @property
    def catalog(self) -> Catalog:
        return self.backend.catalog

    @property
    def counter(self) -> TokenCounter:
        """Ollama's token counter (the OpenAI-compatible engine counts at the engine)."""
        engine = self.backend.engine
        assert isinstance(engine, OllamaEngine), "only the Ollama engine counts in proxy_app"
        return engine.counter


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
