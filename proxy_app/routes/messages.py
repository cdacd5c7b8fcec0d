"""POST /v1/messages and /v1/messages/count_tokens: guard clauses, then one call per step.

authenticate → read and parse → plan (proxy_app.generation) → cached? (proxy_app.cache.policy)
→ count (the prompt must fit) → generate → respond: drained into one Message, or framed as
server-sent events (proxy_app.api.sse).
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

from proxy_app.api.anthropic import CountTokensRequest, MessagesRequest, parse_body
from proxy_app.api.auth import authenticate
from proxy_app.api.sse import LiveStream, format_event
from proxy_app.api.streaming import new_message_id, replay_events
from proxy_app.cache.policy import CachePolicy, ThroughCache, cache_policy
from proxy_app.deps import Services, ServicesDep
from proxy_app.errors import ClientDisconnectedError, RequestTooLargeError
from proxy_app.generation import Answer, Counted
from proxy_app.offload import INLINE_BODY_BYTES
from proxy_app.timing import Timed

router = APIRouter()

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
Parsed = TypeVar("Parsed", bound=CountTokensRequest)


@router.post("/v1/messages")
async def create_message(request: Request, services: ServicesDep) -> Response:
    settings = services.settings
    api_key = authenticate(request, settings.api_keys)
    raw = await read_body(request, settings.max_body_bytes)
    body = await parse(services, raw, MessagesRequest)
    planned = await services.backend.plan(body, stream=body.stream)
    warm_only = body.max_tokens == 0  # only warms the prompt: nothing to cache or generate
    directives = request.headers.get("cache-control", "")
    policy = (
        CachePolicy()
        if warm_only
        else cache_policy(services.cache, planned, api_key=api_key, directives=directives)
    )
    hit, failed = await services.cache.lookup(policy.key) if policy.read else (None, False)
    if hit is not None:
        return _complete(body.stream, {**hit, "id": new_message_id(), "model": body.model}, "HIT")
    counted = await services.backend.count(planned, max_tokens=body.max_tokens)
    if warm_only:
        return _complete(body.stream, warmed(counted), policy.label)
    arrived = request.state.arrived
    generation = services.backend.generate(counted)
    # a lookup that failed open may join a stored answer that finished before it (flight.py):
    # it arrived, as far as the flights can tell, before any of them ended
    joins = -math.inf if failed else arrived
    generated = ThroughCache(services.cache, policy, generation, arrived=joins)
    answer = Timed(generated, services.metrics, arrived=arrived, stream=body.stream)
    headers = {"x-cache": policy.label}
    if not body.stream:
        return JSONResponse(await drain(answer), headers=headers)
    live = LiveStream(
        answer, ping_interval=settings.ping_interval, request_id=request.state.request_id
    )
    await live.open(wait=settings.stream_wait)
    return StreamingResponse(
        live.frames(), media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
    )


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, services: ServicesDep) -> JSONResponse:
    authenticate(request, services.settings.api_keys)
    raw = await read_body(request, services.settings.max_body_bytes)
    body = await parse(services, raw, CountTokensRequest)
    planned = await services.backend.plan(body)
    counted = await services.backend.count(planned)  # refuses what could not be sent to Ollama
    return JSONResponse({"input_tokens": counted.tokens})


async def parse(services: Services, raw: bytes, model: type[Parsed]) -> Parsed:
    """The validated body; a large one is parsed on the worker pool."""
    parsed: Parsed = await services.offload.run_if(
        len(raw) > INLINE_BODY_BYTES, parse_body, raw, model
    )
    return parsed


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` (chunked or not)."""
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


def warmed(counted: Counted) -> dict[str, Any]:
    """The answer to `max_tokens: 0`: no content, stopped at max_tokens."""
    machine = counted.machine()
    machine.stop_reason = "max_tokens"
    return machine.message()


async def drain(answer: Answer) -> dict[str, Any]:
    """A non-streaming answer: only the final Message, not its events."""
    async for _ in answer:
        pass
    return answer.message()


def _complete(stream: bool, message: dict[str, Any], cache: str) -> Response:
    """A complete message, as JSON or as its replayed event stream."""
    headers = {"x-cache": cache}
    if not stream:
        return JSONResponse(message, headers=headers)
    payload = b"".join(format_event(*event) for event in replay_events(message, message["id"]))
    return Response(payload, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
