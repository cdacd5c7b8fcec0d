"""GET/HEAD /health (Ollama, the default model, the cache) and GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from proxy_app.api.auth import authenticate
from proxy_app.deps import ServicesDep

router = APIRouter()


@router.api_route("/health", methods=["GET", "HEAD"])
async def health(request: Request, services: ServicesDep, deep: bool = False) -> JSONResponse:
    """healthy: all ok; degraded: answers possible but something is off (the cache is down,
    the model is missing, or Ollama is down but cached answers are served); unhealthy: no
    Ollama and no cache to answer from.

    Without a key, from each dependency's state checked at most once a second
    (proxy_app.checks); `?deep=1`, with the API key, checks them now.
    """
    if deep:
        authenticate(request, services.settings.api_keys)
    status, body = await services.checks.report(live=deep)
    return JSONResponse(body, status_code=status)


@router.get("/metrics")
async def metrics(services: ServicesDep) -> PlainTextResponse:
    stats = services.cache.stats()
    return PlainTextResponse(services.metrics.render(stats), media_type="text/plain; version=0.0.4")
