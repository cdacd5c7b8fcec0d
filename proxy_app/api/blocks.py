"""The text a content block carries, read leniently but refusing wrong types with a 400.

Every function takes the block and `where` (its path in the request, for the error message).
"""

from __future__ import annotations

import logging
from typing import Any

from proxy_app.api.anthropic import Block
from proxy_app.errors import InvalidRequestError

log = logging.getLogger(__name__)


def block_text(block: Block, where: str) -> str | None:
    """The text a block carries, or None for blocks with nothing the model can read."""
    kind = block_type(block, where)
    if kind == "text":
        return str(required(block, "text", str, where))
    if kind in ("mid_conv_system", "search_result") or (
        kind == "document" and isinstance(block.get("content"), list)
    ):
        title = optional_str(block, "title", where)
        body = _inner_text(block.get("content"), f"{where}.content")
        return f"{title}\n\n{body}" if title else body
    if kind == "document":
        return _document_text(block, where)
    if kind == "tool_reference":
        name = block.get("tool_name") or block.get("name") or ""
        return f"[tool reference: {name if isinstance(name, str) else ''}]"
    log.debug("skipping %s block at %s", kind, where)
    return None


def _inner_text(content: Any, where: str) -> str:
    """The text of a nested `content`: a string, or a list of blocks with `text`."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}: must be a string or a list of blocks")
    texts = []
    for k, inner in enumerate(content):
        if not isinstance(inner, dict):
            raise InvalidRequestError(f"{where}.{k}: every content block must be an object")
        if "text" in inner and inner["text"] is None:  # Anthropic refuses a null text
            raise InvalidRequestError(f"{where}.{k}.text: must be a string, not null")
        texts.append(optional_str(inner, "text", f"{where}.{k}"))
    return "\n\n".join(t for t in texts if t)


def _document_text(block: Block, where: str) -> str:
    source = block.get("source") or {}
    if not isinstance(source, dict):
        raise InvalidRequestError(f"{where}.source: must be an object")
    title = optional_str(block, "title", where) or "document"
    if source.get("type") == "text":
        return f"{title}\n\n{optional_str(source, 'data', f'{where}.source')}"
    media_type = optional_str(source, "media_type", f"{where}.source") or "binary"
    return f"[{title} omitted: this model cannot read {media_type} files]"


def image_data(block: Block, where: str) -> str:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "base64":
        raise InvalidRequestError(
            f"{where}.source: only base64 images are supported by Ollama; "
            "send the image data instead of a URL"
        )
    return str(required(source, "data", str, f"{where}.source"))


def block_type(block: Any, where: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise InvalidRequestError(f"{where}.type: every content block needs a string `type`")
    return str(block["type"])


def required(block: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = block.get(name)
    if not isinstance(value, kind):
        raise InvalidRequestError(f"{where}.{name}: Field required ({kind.__name__})")
    return value


def optional_str(block: dict[str, Any], name: str, where: str) -> str:
    """A field that may be absent (""), but is a string when present."""
    value = block.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequestError(f"{where}.{name}: must be a string")
    return value
