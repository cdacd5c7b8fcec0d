"""How deeply a decoded JSON value nests, and the depth proxy_app accepts.

orjson refuses to serialise deeper than 255 levels and Python's json module stops near 1,000;
an Ollama body wraps a tool schema or a tool call's input in about 6 more levels, so client
input nested deeper than MAX_DEPTH is refused with a 400 and a model's runaway arguments are
replaced (translate.tool_input_json).
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 128


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
