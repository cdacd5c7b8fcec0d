"""Errors proxy_app answers with, and the one place that renders Anthropic's error envelope.

    ProxyError                    base; carries the HTTP status and Anthropic's `error.type`
    ├── InvalidRequestError       400 invalid_request_error: malformed or unsupported input
    │   ├── PromptTooLongError    400 "prompt is too long: N tokens > M maximum"
    │   └── ContextOverflowError  400 the engine refused the prompt as over its window (the
    │                             generation re-raises it as PromptTooLongError, counted numbers)
    ├── AuthenticationError       401 authentication_error: missing or wrong API key
    ├── NotFoundError             404 not_found_error: unknown path or model
    ├── RequestTooLargeError      413 request_too_large: body over PROXY_MAX_BODY_BYTES
    ├── ClientDisconnectedError   499 (never sent): the client left before its body was read
    ├── RateLimitError            429 rate_limit_error: the engine said 429
    ├── UpstreamError             500 api_error: the engine failed in an unexpected way
    ├── UpstreamTimeoutError      504 timeout_error: the engine did not answer in time
    └── OverloadedError           529 overloaded_error: the engine is busy or unreachable

Translators raise these; only `envelope` (used by the exception handlers in main.py and by the
SSE `error` event) turns them into the wire format. No FastAPI import here.
"""

from __future__ import annotations

import secrets
from typing import Any


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


class ProxyError(Exception):
    """Base class; subclasses fix the status and error type."""

    status = 500
    error_type = "api_error"
    default_message = "The proxy failed to handle the request."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None) -> None:
        self.message = message or self.default_message
        self.retry_after = retry_after
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(self.retry_after)}


class InvalidRequestError(ProxyError):
    """Raised when the request is malformed or asks for something this backend cannot do."""

    status = 400
    error_type = "invalid_request_error"
    default_message = "The request is not valid."


class PromptTooLongError(InvalidRequestError):
    """Raised when the prompt does not fit the model's context window."""

    def __init__(self, tokens: int, maximum: int) -> None:
        self.tokens = max(tokens, maximum + 1)
        self.maximum = maximum
        super().__init__(f"prompt is too long: {self.tokens} tokens > {maximum} maximum")


class ContextOverflowError(InvalidRequestError):
    """Raised by an engine client when the engine says the prompt exceeds its window."""


class AuthenticationError(ProxyError):
    """Raised when the API key is missing or not one of PROXY_API_KEYS."""

    status = 401
    error_type = "authentication_error"
    default_message = "Invalid or missing API key: send it as x-api-key or Authorization: Bearer."


class NotFoundError(ProxyError):
    """Raised for an unknown path or a model the engine does not serve."""

    status = 404
    error_type = "not_found_error"
    default_message = "Not found."


class RequestTooLargeError(ProxyError):
    """Raised when the request body exceeds PROXY_MAX_BODY_BYTES."""

    status = 413
    error_type = "request_too_large"
    default_message = "The request body is too large."

    def headers(self) -> dict[str, str]:
        # The rest of the body is never read: close the connection instead of draining it.
        return {**super().headers(), "connection": "close"}


class ClientDisconnectedError(ProxyError):
    """Raised when the client closes the connection before its request body is complete.

    Nobody reads the answer; 499 (nginx's "client closed request") keeps it out of the 5xx
    counts in /metrics.
    """

    status = 499
    error_type = "client_closed_request"
    default_message = "The client closed the connection before sending the whole request."


class RateLimitError(ProxyError):
    """Raised when the engine answers 429."""

    status = 429
    error_type = "rate_limit_error"
    default_message = "Too many requests; retry later."


class UpstreamError(ProxyError):
    """Raised when the engine fails in a way the client cannot fix."""

    status = 500
    error_type = "api_error"
    default_message = "The engine failed to answer."


class UpstreamTimeoutError(ProxyError):
    """Raised when the engine does not answer within the configured timeouts."""

    status = 504
    error_type = "timeout_error"
    default_message = "The engine did not answer in time."


class OverloadedError(ProxyError):
    """Raised when the engine is busy (its 503) or cannot be reached."""

    status = 529
    error_type = "overloaded_error"
    default_message = "The engine is overloaded; retry later."

    def __init__(self, message: str | None = None, *, retry_after: int | None = 5) -> None:
        super().__init__(message, retry_after=retry_after)


STATUS_TO_ERROR: dict[int, type[ProxyError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    405: NotFoundError,
    413: RequestTooLargeError,
    429: RateLimitError,
}


def error_for_status(status: int, message: str) -> ProxyError:
    """Map an HTTP status raised by the framework (404 route, 405 method…) to a ProxyError."""
    cls = STATUS_TO_ERROR.get(status, InvalidRequestError if 400 <= status < 500 else UpstreamError)
    return cls(message)


def envelope(error: ProxyError, request_id: str) -> dict[str, Any]:
    """Anthropic's error body; also the payload of an SSE `error` event."""
    return {
        "type": "error",
        "error": {"type": error.error_type, "message": error.message},
        "request_id": request_id,
    }
