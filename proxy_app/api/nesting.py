"""How deeply JSON nests, and how deep a value may be to fit in Ollama's request body.

orjson, which writes the `/api/chat` body, refuses more than 254 nested levels. A tool call's
arguments sit 6 levels down in that body (a tool schema 4), so client input nested deeper than
MAX_DEPTH cannot be sent: it is a 400 naming the field (generation.Backend.plan), and a model's
runaway arguments are replaced before they reach the next request (toolcalls.tool_input_json).
"""

from __future__ import annotations

from typing import Any

import orjson

ORJSON_MAX_DEPTH = 254
ARGUMENTS_LEVEL = 6  # payload → messages → message → tool_calls → call → function → arguments
MAX_DEPTH = ORJSON_MAX_DEPTH - ARGUMENTS_LEVEL


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in a decoded JSON value (a scalar is 0)."""
    depth, level = 0, [value]
    while level:
        containers = [v for v in level if isinstance(v, (dict, list))]
        if not containers:
            break
        depth += 1
        level = [
            item
            for container in containers
            for item in (container.values() if isinstance(container, dict) else container)
        ]
    return depth


def fits_as_arguments(value: Any) -> bool:
    """Whether `value` could be sent back to Ollama as a tool call's arguments."""
    probe = value
    for _ in range(ARGUMENTS_LEVEL):
        probe = [probe]
    try:
        orjson.dumps(probe)
    except orjson.JSONEncodeError:
        return False
    return True
