"""Lenient models of the Messages API request: extra fields are allowed everywhere.

Content blocks stay plain dicts (new block types appear often); translate.py reads them.
A validation failure is reported as 400 invalid_request_error naming the field, never as 422.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from proxy_app.errors import InvalidRequestError

Block = dict[str, Any]
# Integers go to Ollama as JSON numbers, which orjson writes only up to 64 bits.
MAX_INT = 2**31 - 1


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class Message(_Lenient):
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


class Tool(_Lenient):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class ToolChoice(_Lenient):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None


class CountTokensRequest(_Lenient):
    model: str = Field(min_length=1)
    messages: list[Message]
    system: str | list[Block] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=0, le=MAX_INT)
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=MAX_INT)
    stop_sequences: list[str] | None = None
    metadata: dict[str, Any] | None = None


def content_blocks(request: CountTokensRequest) -> int:
    """How many content blocks the request's messages hold (a string counts as one)."""
    return sum(1 if isinstance(m.content, str) else len(m.content) for m in request.messages)


def parse_body(raw: bytes, model: type[CountTokensRequest]) -> Any:
    """Decode and validate a request body, raising InvalidRequestError with the field's path."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        if first["type"] == "missing":
            raise InvalidRequestError(f"{where}: Field required") from exc
        raise InvalidRequestError(f"{where}: {first['msg']}") from exc
