"""GET /health (Ollama, the default model, the cache) and GET /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from proxy_app.deps import ServicesDep
from proxy_app.errors import ProxyError
from proxy_app.ollama import canonical_name

router = APIRouter()


@router.get("/health")
async def health(services: ServicesDep) -> JSONResponse:
    """healthy: all ok; degraded: answers possible but something is off (the cache is down,
    the model is missing, or Ollama is down but cached answers are served); unhealthy: no
    Ollama and no cache to answer from."""
    components: dict[str, dict[str, Any]] = {}
    model = canonical_name(services.settings.default_model)
    try:
        version = await services.ollama.get_json("/api/version", timeout=3.0)
        components["ollama"] = {"status": "ok", "version": version.get("version", "")}
        models = await services.catalog.refresh()
        if model in models:
            digest = str(models[model].get("digest", ""))
            components["model"] = {"status": "ok", "name": model, "digest": digest}
        else:
            components["model"] = {
                "status": "error",
                "name": model,
                "error": f"model {model} is not pulled; run `ollama pull {model}`",
            }
    except ProxyError as exc:
        components["ollama"] = {"status": "error", "error": exc.message}
        components["model"] = {"status": "unknown", "name": model}
    components["cache"] = await services.cache.health()
    # Without Ollama, cached answers for a model seen before are still served.
    from_cache = components["cache"]["status"] == "ok" and services.catalog.known(model)
    if components["ollama"]["status"] != "ok" and not from_cache:
        status = "unhealthy"
    elif any(c["status"] == "error" for c in components.values()):
        status = "degraded"
    else:
        status = "healthy"
    code = 503 if status == "unhealthy" else 200
    return JSONResponse({"status": status, "components": components}, status_code=code)


@router.get("/metrics")
async def metrics(services: ServicesDep) -> PlainTextResponse:
    stats = services.cache.stats()
    return PlainTextResponse(services.metrics.render(stats), media_type="text/plain; version=0.0.4")
