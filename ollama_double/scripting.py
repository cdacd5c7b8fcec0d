"""Scripting the Ollama API test double: the replies a test queues, the requests it records.

It must stay valid on Python 3.10 and 3.11 with only the standard library, without
``from __future__`` or relative imports outside its marked import block: ``archive.py``
concatenates the double's modules into the single-file stand-in ``bin/ollama``.
"""

import dataclasses
import json
from typing import Any, NamedTuple

# --- double-import-begin (stripped when building the single-file bin/ollama)
from .models import _split_n, _split_words

# --- double-import-end

# --------------------------------------------------------------------------- scripting


@dataclasses.dataclass
class Reply:
    """One scripted answer for one ``/api/chat`` call (test double scripting, not Ollama).

    content          assistant text; split into ``chunks`` pieces (default: one piece per word)
    tool_calls       list of ``{"name", "arguments": {...}}`` (or full Ollama shape); sent whole
                     in a single chunk after the text, ids ``call_xxxxxxxx`` (version >= 0.12.10)
    thinking         text streamed in ``message.thinking`` before the content
    done_reason      "stop" (default) / "length"; None lets ``options.num_predict`` decide
    prompt_eval_count, eval_count   override the estimates (the scripted prompt count is also
                     what the context-length check uses)
    status, error    status != 200 -> HTTP error ``{"error": error}`` before any chunk
    error_after      with ``error`` and status 200: after K content chunks send the NDJSON line
                     ``{"error": ...}`` and end the stream (HTTP status stays 200)
    first_chunk_delay  seconds of "prefill" before the response headers/first chunk
    chunk_delay      seconds between chunks
    hang             after the content, keep streaming ``hang_text`` every ``hang_interval``
                     seconds until the client disconnects (or the double stops)
    raw_lines        if set, written verbatim as the NDJSON lines (no final chunk is added)
    """

    content: str = "ok"
    chunks: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    thinking: str | None = None
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    status: int = 200
    error: str | None = None
    error_after: int | None = None
    first_chunk_delay: float = 0.0
    chunk_delay: float = 0.0
    hang: bool = False
    hang_interval: float = 0.05
    hang_text: str = "."
    raw_lines: list[Any] | None = None

    @classmethod
    def http_error(cls, status: int, message: str, **kw: Any) -> "Reply":
        return cls(content="", status=status, error=message, **kw)

    @classmethod
    def stream_error(cls, message: str, after: int = 1, content: str = "partial answer here",
                     **kw: Any) -> "Reply":
        return cls(content=content, error=message, error_after=after, **kw)

    @classmethod
    def qwen3_coder(cls, calls: list[dict[str, Any]], text: str = "",
                    shape: str = "well_formed", **kw: Any) -> "Reply":
        """qwen3-coder's tool calls written as text, the way they reach a client when Ollama's
        parser misses them: ``text`` then each call in the XML-style format, in one ``shape``
        of QWEN3_CODER_SHAPES (well-formed, or a malformed variant seen in practice)."""
        body = "".join(qwen3_coder_call_text(c["name"], c.get("arguments") or {}, shape)
                       for c in calls)
        return cls(content=text + body, **kw)

    def content_pieces(self) -> list[str]:
        if self.chunks is not None:
            return _split_n(self.content, self.chunks)
        return _split_words(self.content)


QWEN3_CODER_SHAPES = (
    "well_formed", "no_function_close", "no_tool_call_close", "no_wrapper",
    "parameters_after_function", "json_in_parameter",
)


def qwen3_coder_call_text(name: str, arguments: dict[str, Any], shape: str = "well_formed") -> str:
    """One call in qwen3-coder's format (Ollama model/renderers/qwen3coder.go): values as raw
    text, non-strings as JSON; ``shape`` picks a malformed variant."""
    if shape not in QWEN3_CODER_SHAPES:
        raise ValueError(f"unknown qwen3-coder shape {shape!r}; one of {QWEN3_CODER_SHAPES}")

    def value(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    params = "".join(f"<parameter={k}>\n{value(v)}\n</parameter>\n" for k, v in arguments.items())
    if shape == "json_in_parameter":
        params = f"<parameter=arguments>\n{json.dumps(arguments)}\n</parameter>\n"
    if shape == "parameters_after_function":
        return f"<tool_call>\n<function={name}>\n</function>\n{params}</tool_call>\n"
    close = "" if shape == "no_function_close" else "</function>\n"
    function = f"<function={name}>\n{params}{close}"
    if shape == "no_wrapper":
        return function
    return "<tool_call>\n" + function + ("" if shape == "no_tool_call_close" else "</tool_call>\n")


class RecordedRequest(NamedTuple):
    method: str
    path: str
    body: Any  # parsed JSON, None when empty/invalid
    headers: dict[str, str]
