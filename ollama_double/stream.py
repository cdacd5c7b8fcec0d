"""One generation's answer as Ollama's NDJSON chunks (``stream``) or one final body.

It must stay valid on Python 3.10 and 3.11 with only the standard library, without
``from __future__`` or relative imports outside its marked import block: ``archive.py``
concatenates the double's modules into the single-file stand-in ``bin/ollama``.
"""

import time
from typing import Any, NamedTuple

# --- double-import-begin (stripped when building the single-file bin/ollama)
from .models import _split_words, now_rfc3339
from .scripting import Reply

# --- double-import-end

class _Answer(NamedTuple):
    """What one /api/chat call answers, once ``num_predict`` and ``think`` have applied."""

    content: str
    pieces: list[str]
    thinking: str | None
    tool_calls: list[dict[str, Any]] | None
    done_reason: str
    eval_count: int


class _Turn(NamedTuple):
    """One generation (/api/chat, or a raw /api/generate): its answer and the numbers its final
    chunk reports."""

    base: dict[str, Any]
    t0: int
    prompt_tokens: int
    prefill_ns: int | None
    answer: _Answer
    raw: bool = False  # /api/generate's shape: the text in `response`, no `message`

    def _body(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {"response": msg.get("content", "")} if self.raw else {"message": msg}

    def chunk(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {**self.base, "created_at": now_rfc3339(), **self._body(msg), "done": False}

    def final(self, msg: dict[str, Any], t_first: int) -> dict[str, Any]:
        t_end = time.monotonic_ns()
        return {**self.base, "created_at": now_rfc3339(), **self._body(msg), "done": True,
                "done_reason": self.answer.done_reason,
                "total_duration": max(t_end - self.t0, 2_000_000),
                "load_duration": 1_000_000, "prompt_eval_count": self.prompt_tokens,
                "prompt_eval_duration": self.prefill_ns or max(t_first - self.t0, 1),
                "eval_count": self.answer.eval_count,
                "eval_duration": max(t_end - t_first, 1)}


def _message(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **extra}


def _stream_messages(reply: Reply, answer: _Answer) -> tuple[list[dict[str, Any]], int | None]:
    """The streamed messages (thinking, content, then the tool calls in one) and the index
    where a scripted mid-stream error replaces them (None: no error)."""
    lines = [_message("", thinking=piece) for piece in _split_words(answer.thinking or "")]
    content_lines = [_message(piece) for piece in answer.pieces]
    error_at = None
    if reply.error is not None:
        error_at = len(lines) + min(reply.error_after or 0, len(content_lines))
    lines += content_lines
    if answer.tool_calls:
        lines.append(_message("", tool_calls=answer.tool_calls))
    return lines, error_at
