"""Server-sent event framing: the only place SSE bytes are written."""

from __future__ import annotations

from typing import Any

import orjson

PING = b'event: ping\ndata: {"type":"ping"}\n\n'


def format_event(name: str, data: dict[str, Any]) -> bytes:
    """Frame one event; Anthropic's `type` field always equals the event name."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
