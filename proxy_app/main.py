"""create_app(settings): wiring, lifespan, the request-id middleware and the error handlers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy_app import vocab
from proxy_app.cache.store import ResponseCache
from proxy_app.checks import Checks
from proxy_app.config import Settings
from proxy_app.deps import Services
from proxy_app.engines import Engine
from proxy_app.engines.ollama_engine import OllamaEngine
from proxy_app.engines.openai import OpenAIEngine
from proxy_app.errors import (
    InvalidRequestError,
    ProxyError,
    UpstreamError,
    envelope,
    error_for_status,
    new_request_id,
)
from proxy_app.generation import Backend
from proxy_app.lag import watch_lag
from proxy_app.metrics import Metrics
from proxy_app.offload import Offload
from proxy_app.redact import install_access_log_filter
from proxy_app.routes import health, messages, models

log = logging.getLogger("proxy_app")

KNOWN_PATHS = {"/v1/messages", "/v1/messages/count_tokens", "/v1/models", "/health", "/metrics"}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        install_access_log_filter()  # query values (keys sent as ?key=…) never reach the log
        offload = Offload(settings.worker_threads)
        engine = open_engine(settings, offload)
        backend = Backend(settings, engine=engine, metrics=app.state.metrics, offload=offload)
        cache = ResponseCache(settings)
        checks = Checks(model=settings.default_model, engine=engine, cache=cache)
        services = Services(settings, backend, app.state.metrics, cache, checks)
        app.state.services = services
        # Qwen's vocabulary takes ~0.5 s to load: do it now rather than in the first request.
        await asyncio.to_thread(vocab.vocabulary_for, "qwen2")
        lag = asyncio.create_task(watch_lag(app.state.metrics.event_loop_lag))
        try:
            # Lifespan state reaches uvicorn's protocol too: its refusals count in /metrics.
            yield {"metrics": app.state.metrics}
        finally:
            lag.cancel()
            await engine.aclose()
            await services.cache.aclose()
            backend.offload.close()

    app = FastAPI(
        title="proxy_app",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # `POST /v1/messages/` is a 404, never a redirect built from the client's Host header.
        redirect_slashes=False,
    )
    app.state.metrics = Metrics()
    app.include_router(messages.router)
    app.include_router(models.router)
    app.include_router(health.router)
    app.add_exception_handler(ProxyError, _proxy_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(RequestIdMiddleware, metrics=app.state.metrics)
    return app


def open_engine(settings: Settings, offload: Offload) -> Engine:
    """The engine PROXY_ENGINE names, at PROXY_ENGINE_URL."""
    if settings.engine == "openai":
        return OpenAIEngine(settings, offload)
    return OllamaEngine(settings, offload)


def error_response(error: ProxyError, request_id: str) -> JSONResponse:
    return JSONResponse(
        envelope(error, request_id), status_code=error.status, headers=error.headers()
    )


async def _proxy_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProxyError)
    return error_response(exc, request.state.request_id)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"Not found: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(error_for_status(exc.status_code, message), request.state.request_id)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    error = InvalidRequestError(f"{where}: {first['msg']}")
    return error_response(error, request.state.request_id)


class RequestIdMiddleware:
    """Gives every request an id (`request-id` header), times it, and renders crashes."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        started = time.perf_counter()
        scope.setdefault("state", {}).update(request_id=request_id, arrived=started)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in request %s", request_id)
            if response_started:
                raise
            response = error_response(UpstreamError("The proxy failed unexpectedly."), request_id)
            await response(scope, receive, send_with_id)
        finally:
            path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
            self.metrics.observe_request(path, status, time.perf_counter() - started)
