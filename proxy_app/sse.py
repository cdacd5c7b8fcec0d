"""Server-sent event framing: the only place SSE bytes are written."""

from __future__ import annotations

import json
from typing import Any

PING = b'event: ping\ndata: {"type":"ping"}\n\n'


def format_event(name: str, data: dict[str, Any]) -> bytes:
    """Frame one event; Anthropic's `type` field always equals the event name."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {name}\ndata: {body}\n\n".encode()
