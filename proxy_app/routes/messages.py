"""POST /v1/messages and /v1/messages/count_tokens: parse → plan → cache → relay → respond."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from proxy_app.anthropic import CountTokensRequest, MessagesRequest, parse_body
from proxy_app.auth import authenticate
from proxy_app.deps import Services, ServicesDep
from proxy_app.errors import ProxyError, RequestTooLargeError, UpstreamError, envelope
from proxy_app.generation import Plan, plan, relay
from proxy_app.sse import PING, format_event
from proxy_app.streaming import AnthropicEventStream, Event, closing_events

router = APIRouter()

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@router.post("/v1/messages")
async def create_message(request: Request, services: ServicesDep) -> Response:
    authenticate(request, services.settings.api_keys)
    body = parse_body(await _read_body(request, services), MessagesRequest)
    planned = await _plan(body, services)
    machine = planned.machine()
    if body.max_tokens == 0:
        return _answer(body.stream, _empty_answer(machine), machine, "BYPASS")
    if body.stream:
        stream = _sse(services, planned, machine, request.state.request_id)
        return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
    await _collect(services, planned, machine)
    return JSONResponse(machine.message())


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, services: ServicesDep) -> JSONResponse:
    authenticate(request, services.settings.api_keys)
    body = parse_body(await _read_body(request, services), CountTokensRequest)
    planned = await _plan(body, services, check_fit=False)
    return JSONResponse({"input_tokens": planned.estimate})


async def _read_body(request: Request, services: Services) -> bytes:
    limit = services.settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"The request body is over the {limit}-byte limit.")
    body = await request.body()
    if len(body) > limit:
        raise RequestTooLargeError(f"The request body is over the {limit}-byte limit.")
    return body


async def _plan(body: CountTokensRequest, services: Services, *, check_fit: bool = True) -> Plan:
    try:
        return await plan(
            body,
            settings=services.settings,
            catalog=services.catalog,
            estimator=services.estimator,
            check_fit=check_fit,
        )
    except ProxyError as exc:
        services.metrics.upstream_errors[exc.error_type] += 1
        raise


async def _events(
    services: Services, planned: Plan, machine: AnthropicEventStream
) -> AsyncIterator[Event | None]:
    """The relay, with metrics and calibration recorded once the message completes."""
    try:
        async for event in relay(
            services.ollama,
            planned,
            machine,
            ping_interval=services.settings.ping_interval,
            num_ctx=services.settings.num_ctx,
        ):
            yield event
    except ProxyError as exc:
        services.metrics.upstream_errors[exc.error_type] += 1
        raise
    metrics = services.metrics
    metrics.tokens["input"] += machine.input_tokens
    metrics.tokens["output"] += machine.output_tokens
    metrics.recovered_tool_calls += machine.recovered_calls
    if machine.prompt_eval_count:
        services.estimator.observe(planned.upstream.payload, machine.prompt_eval_count)


async def _collect(services: Services, planned: Plan, machine: AnthropicEventStream) -> None:
    async for _ in _events(services, planned, machine):
        pass


async def _sse(
    services: Services, planned: Plan, machine: AnthropicEventStream, request_id: str
) -> AsyncIterator[bytes]:
    # message_start and a ping go out at once, before Ollama's prefill ends (wire contract §2.5).
    yield b"".join(format_event(*event) for event in machine.start()) + PING
    try:
        async for event in _events(services, planned, machine):
            yield PING if event is None else format_event(*event)
    except Exception as exc:
        error = exc if isinstance(exc, ProxyError) else UpstreamError()
        yield format_event("error", envelope(error, request_id))


def _empty_answer(machine: AnthropicEventStream) -> dict[str, Any]:
    """`max_tokens: 0` only warms the prompt: answer at once with no content."""
    machine.stop_reason = "max_tokens"
    return machine.message()


def _answer(
    stream: bool, message: dict[str, Any], machine: AnthropicEventStream, cache: str
) -> Response:
    headers = {"x-cache": cache}
    if not stream:
        return JSONResponse(message, headers=headers)
    events = [*machine.start(), *closing_events(message)]
    payload = b"".join(format_event(*event) for event in events)
    return Response(payload, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
