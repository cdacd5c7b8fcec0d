"""GET /v1/models in Anthropic's shape, and the probes Claude Code sends at start-up."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from proxy_app.aliases import route_model
from proxy_app.api.auth import authenticate
from proxy_app.deps import ServicesDep
from proxy_app.errors import InvalidRequestError, NotFoundError

router = APIRouter()

EPOCH = "1970-01-01T00:00:00Z"


@router.api_route("/", methods=["GET", "HEAD"])
@router.api_route("/api/hello", methods=["GET", "HEAD"])
async def probe() -> Response:
    """Claude Code's connectivity probes (`HEAD /`, `HEAD /api/hello`)."""
    return JSONResponse({"status": "ok"})


@router.get("/v1/models")
async def list_models(request: Request, services: ServicesDep) -> JSONResponse:
    authenticate(request, services.settings.api_keys)
    limit = _limit(request.query_params.get("limit", "20"))
    entries = await _entries(services)
    after = request.query_params.get("after_id")
    before = request.query_params.get("before_id")
    ids = [entry["id"] for entry in entries]
    if after in ids:
        entries = entries[ids.index(after) + 1 :]
    elif before in ids:
        entries = entries[: ids.index(before)][-limit:]
    page = entries[:limit]
    return JSONResponse(
        {
            "data": page,
            "has_more": len(entries) > len(page),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
    )


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request, services: ServicesDep) -> JSONResponse:
    authenticate(request, services.settings.api_keys)
    settings = services.settings
    target = await route_model(
        model_id,
        default=settings.default_model,
        aliases=settings.model_aliases,
        background=settings.background_model,
        available=services.catalog.has,
    )
    if await services.catalog.digest(target) is None:
        raise NotFoundError(
            f"model: '{model_id}' is not available; {services.catalog.missing(target)}."
        )
    window = await services.catalog.window(target)
    return JSONResponse(_entry(model_id, target, EPOCH, window))


async def _entries(services: ServicesDep) -> list[dict[str, Any]]:
    catalog = services.catalog
    tags = await catalog.refresh()
    entries = []
    for aliased, target in services.settings.model_aliases.items():
        entries.append(_entry(aliased, target, EPOCH, await catalog.window(target)))
    for name, tag in tags.items():
        created = _rfc3339(tag.get("modified_at"))
        entries.append(_entry(name, name, created, await catalog.window(name)))
    return entries


def _entry(model_id: str, target: str, created: str, num_ctx: int) -> dict[str, Any]:
    display = model_id if model_id == target else f"{model_id} → {target}"
    return {
        "type": "model",
        "id": model_id,
        "display_name": display,
        "created_at": created,
        "max_input_tokens": num_ctx,
    }


def _limit(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidRequestError("limit: must be an integer from 1 to 1000")
    return int(raw)


def _rfc3339(value: Any) -> str:
    """Ollama's `modified_at` (nanoseconds, offset) as RFC 3339 in UTC."""
    if not isinstance(value, str):
        return EPOCH
    try:
        parsed = datetime.fromisoformat(re.sub(r"\.\d+", "", value).replace("Z", "+00:00"))
    except ValueError:
        return EPOCH
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
