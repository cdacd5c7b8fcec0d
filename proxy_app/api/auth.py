"""Inbound API keys: x-api-key or Authorization: Bearer, compared in constant time."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from proxy_app.errors import AuthenticationError


def authenticate(request: Request, keys: list[str]) -> str:
    """Return the caller's key ("" when auth is off); raise AuthenticationError otherwise."""
    if not keys:
        return ""
    offered = [request.headers.get("x-api-key", "")]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        offered.append(token.strip())
    for candidate in offered:
        # Header values arrive as latin-1 text; compare bytes, so a non-ASCII key is just wrong.
        raw = candidate.encode("utf-8")
        if raw and any(hmac.compare_digest(raw, key.encode("utf-8")) for key in keys):
            return candidate
    raise AuthenticationError()
