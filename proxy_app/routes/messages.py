"""POST /v1/messages and /v1/messages/count_tokens: parse → plan → cache → relay → respond."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

from proxy_app.anthropic import CountTokensRequest, MessagesRequest, parse_body
from proxy_app.auth import authenticate
from proxy_app.cache_policy import CachePolicy, cache_policy, through_cache
from proxy_app.deps import Services, ServicesDep
from proxy_app.errors import (
    ClientDisconnectedError,
    ProxyError,
    RequestTooLargeError,
)
from proxy_app.generation import Plan, plan, prompt_limit, relay
from proxy_app.sse import Emit, LiveStream, format_event
from proxy_app.streaming import AnthropicEventStream, Event, new_message_id, replay_events

router = APIRouter()

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@router.post("/v1/messages")
async def create_message(request: Request, services: ServicesDep) -> Response:
    api_key = authenticate(request, services.settings.api_keys)
    body = parse_body(await _read_body(request, services), MessagesRequest)
    planned = await _plan(body, services)
    # `max_tokens: 0` only warms the prompt: nothing to cache, nothing to generate.
    warm_only = body.max_tokens == 0
    directives = request.headers.get("cache-control", "")
    policy = (
        CachePolicy()
        if warm_only
        else cache_policy(services.cache, planned, api_key=api_key, directives=directives)
    )
    if policy.read:
        hit = await services.cache.get(policy.key)
        if hit is not None:
            hit.update(id=new_message_id(), model=body.model)
            return _answer(body.stream, hit, "HIT")
    planned.encode(body, stream=body.stream)
    limit = prompt_limit(services.settings, planned.upstream_model, body.max_tokens)
    planned.measure(services.counter, limit=limit)
    machine = planned.machine()
    if warm_only:
        machine.stop_reason = "max_tokens"
        return _answer(body.stream, machine.message(), policy.label)
    produce = _producer(services, planned, machine, policy, stream=body.stream)
    headers = {"x-cache": policy.label}
    if body.stream:
        live = LiveStream(
            machine,
            produce,
            ping_interval=services.settings.ping_interval,
            request_id=request.state.request_id,
        )
        await live.open(wait=services.settings.stream_wait)
        return StreamingResponse(
            live.frames(), media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
        )
    message = await produce(_discard)
    return JSONResponse({**message, "id": machine.message_id, "model": body.model}, headers=headers)


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, services: ServicesDep) -> JSONResponse:
    authenticate(request, services.settings.api_keys)
    body = parse_body(await _read_body(request, services), CountTokensRequest)
    planned = await _plan(body, services)
    planned.encode(body, stream=False)  # refuses what could not be sent to Ollama
    return JSONResponse({"input_tokens": planned.measure(services.counter)})


async def _read_body(request: Request, services: Services) -> bytes:
    """The whole body, refused with 413 as soon as it passes the limit (chunked or not)."""
    limit = services.settings.max_body_bytes
    too_large = RequestTooLargeError(f"The request body is over the {limit}-byte limit.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ClientDisconnectedError() from exc
    return b"".join(chunks)


async def _plan(body: CountTokensRequest, services: Services) -> Plan:
    try:
        return await plan(body, settings=services.settings, catalog=services.catalog)
    except ProxyError as exc:
        services.metrics.upstream_errors[exc.error_type] += 1
        raise


def _producer(
    services: Services,
    planned: Plan,
    machine: AnthropicEventStream,
    policy: CachePolicy,
    *,
    stream: bool,
) -> Callable[[Emit], Awaitable[dict[str, Any]]]:
    """The generation, through the cache (stored, and shared by identical requests)."""

    async def generate(emit: Emit) -> dict[str, Any]:
        await _run(services, planned, machine, emit, stream=stream)
        return machine.message()

    async def produce(emit: Emit) -> dict[str, Any]:
        return await through_cache(
            services.cache, policy, generate, emit, message_id=machine.message_id
        )

    return produce


async def _run(
    services: Services, planned: Plan, machine: AnthropicEventStream, emit: Emit, *, stream: bool
) -> None:
    """Relay one generation; record metrics and calibrate the token estimate afterwards."""
    metrics = services.metrics
    try:
        await relay(
            services.ollama,
            planned,
            machine,
            emit,
            stream=stream,
        )
    except ProxyError as exc:
        metrics.upstream_errors[exc.error_type] += 1
        raise
    metrics.observe_tokens(planned.requested_model, machine.input_tokens, machine.output_tokens)
    metrics.recovered_tool_calls += machine.recovered_calls
    if machine.prompt_eval_count and planned.counted is not None:
        services.counter.observe(planned.upstream_model, planned.counted, machine.prompt_eval_count)


def _discard(events: list[Event]) -> None:
    """A non-streaming answer needs only the final message, not the events."""


def _answer(stream: bool, message: dict[str, Any], cache: str) -> Response:
    """A complete message, as JSON or as its replayed event stream."""
    headers = {"x-cache": cache}
    if not stream:
        return JSONResponse(message, headers=headers)
    payload = b"".join(format_event(*event) for event in replay_events(message, message["id"]))
    return Response(payload, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
