"""AnthropicEventStream: one per request, turns Ollama chat chunks into Anthropic events.

The state is explicit: the index of the open block and its kind. Every event the machine emits
keeps the Messages API stream grammar (message_start first, contiguous block indices, deltas
only inside an open block, message_delta then message_stop last), and the machine builds the
final Message from the same steps, so streaming and non-streaming answers cannot disagree.
"""

from __future__ import annotations

import enum
import json
import secrets
from typing import Any

from proxy_app.families.toolcalls import RecoveredCall, tool_input_json
from proxy_app.families.xmlcalls import CallRescue

Event = tuple[str, dict[str, Any]]

STOP_REASONS = {"length": "max_tokens"}


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def new_tool_id() -> str:
    return "toolu_" + secrets.token_hex(12)


class Block(enum.Enum):
    NONE = "none"
    TEXT = "text"
    THINKING = "thinking"


class StopMatcher:
    """Finds the first stop sequence in streamed text, holding back a possible partial match."""

    def __init__(self, sequences: list[str]) -> None:
        self.sequences = sequences
        self._hold = max((len(s) for s in sequences), default=1) - 1
        self._buffer = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        if not self.sequences:
            return text
        self._buffer += text
        hits = [(self._buffer.find(s), s) for s in self.sequences if s in self._buffer]
        if hits:
            at, self.matched = min(hits)
            safe, self._buffer = self._buffer[:at], ""
            return safe
        cut = max(len(self._buffer) - self._hold, 0)
        safe, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return safe

    def flush(self) -> str:
        rest, self._buffer = self._buffer, ""
        return rest


class AnthropicEventStream:
    """Per-request state machine: Ollama chunks in, Anthropic events out."""

    def __init__(
        self,
        *,
        model: str,
        input_tokens: int,
        tool_names: list[str],
        stop_sequences: list[str],
        message_id: str | None = None,
        tool_schemas: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.message_id = message_id or new_message_id()
        self.model = model
        self.input_tokens = input_tokens
        self.output_tokens = 0
        self.content: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.recovered_calls = 0
        self.prompt_eval_count: int | None = None
        self._open = Block.NONE
        self._stops = StopMatcher(stop_sequences)
        # input_schema by tool name: recovered XML parameter values are typed by it
        self._schemas = {name: (tool_schemas or {}).get(name) or {} for name in tool_names}
        self._scanner = CallRescue(self._schemas) if tool_names else None
        self._held = ""  # a trailing newline not sent yet: it may separate text from a call

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    def start(self) -> list[Event]:
        return [start_event(self.message())]

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """One non-final Ollama chunk; after a stop sequence matched, `done` is true."""
        events: list[Event] = []
        message = chunk.get("message") or {}
        if message.get("content") or message.get("thinking"):
            self.output_tokens += 1
        if message.get("thinking"):
            events += self._delta(Block.THINKING, message["thinking"])
        if message.get("content"):
            safe = self._stops.feed(message["content"])
            events += self._text(safe)
            if self._stops.matched is not None:
                return events + self._finish("stop_sequence")
        if message.get("tool_calls"):
            events += self._flush_text(calls_follow=True)
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                events += self._tool_use(function.get("name", ""), function.get("arguments"))
        return events

    def finish(self, final: dict[str, Any]) -> list[Event]:
        """The `done: true` chunk: close blocks, then message_delta and message_stop."""
        events = self.feed(final)
        if self.done:
            return events
        self.prompt_eval_count = final.get("prompt_eval_count")
        self.input_tokens = int(self.prompt_eval_count or self.input_tokens)
        self.output_tokens = int(final.get("eval_count") or self.output_tokens)
        events += self._text(self._stops.flush())
        events += self._flush_text()
        reason = STOP_REASONS.get(str(final.get("done_reason")), "end_turn")
        return events + self._finish(reason)

    def message(self) -> dict[str, Any]:
        """The Message as a non-streaming response returns it (complete once `done`)."""
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content,
            "stop_reason": self.stop_reason,
            "stop_sequence": self._stops.matched,
            "usage": self._usage(self.output_tokens),
        }

    def _usage(self, output_tokens: int) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": max(output_tokens, 1)}

    def _text(self, text: str) -> list[Event]:
        if self._scanner is not None:
            text = self._held + self._scanner.feed(text)
            text, self._held = _hold_newline(text)
        return self._delta(Block.TEXT, text) if text else []

    def _flush_text(self, *, calls_follow: bool = False) -> list[Event]:
        """Release text held by the tool-call scanner and emit the calls it recovered. The one
        newline that separates a turn's text from its first call belongs to the call (Qwen's
        templates render `text` + "\n<tool_call>"), so the text block ends without it."""
        if self._scanner is None:
            return []
        text, calls = self._scanner.finish()
        self._scanner = CallRescue(self._schemas)
        text, self._held = self._held + text, ""
        if calls or calls_follow:
            text = text.removesuffix("\n")
        events = self._delta(Block.TEXT, text) if text else []
        for call in calls:
            events += self._recovered(call)
        return events

    def _recovered(self, call: RecoveredCall) -> list[Event]:
        self.recovered_calls += 1
        return self._tool_use(call.name, call.input)

    def _delta(self, kind: Block, text: str) -> list[Event]:
        events = [] if self._open is kind else self._close() + self._open_block(kind)
        index = len(self.content) - 1
        field = "text" if kind is Block.TEXT else "thinking"
        self.content[index][field] += text
        delta = {"type": f"{field}_delta", field: text}
        return [*events, _event("content_block_delta", index=index, delta=delta)]

    def _open_block(self, kind: Block) -> list[Event]:
        field = "text" if kind is Block.TEXT else "thinking"
        block: dict[str, Any] = {"type": field, field: ""}
        if kind is Block.THINKING:
            block["signature"] = ""
        self.content.append(block)
        self._open = kind
        return [_event("content_block_start", index=len(self.content) - 1, content_block={**block})]

    def _close(self) -> list[Event]:
        if self._open is Block.NONE:
            return []
        self._open = Block.NONE
        return [_event("content_block_stop", index=len(self.content) - 1)]

    def _tool_use(self, name: str, arguments: Any) -> list[Event]:
        events = self._close()
        arguments = tool_input_json(arguments)
        block = {"type": "tool_use", "id": new_tool_id(), "name": name, "input": arguments}
        self.content.append(block)
        return events + block_events(len(self.content) - 1, block)

    def _finish(self, reason: str) -> list[Event]:
        events = self._close()
        if any(block["type"] == "tool_use" for block in self.content):
            reason = "tool_use"
        self.stop_reason = reason
        return [*events, *closing_events(self.message())]


def _hold_newline(text: str) -> tuple[str, str]:
    """Split one trailing newline off `text`: (what can be sent, what is held back)."""
    return (text[:-1], "\n") if text.endswith("\n") else (text, "")


def closing_events(message: dict[str, Any]) -> list[Event]:
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    return [
        _event("message_delta", delta=delta, usage=message["usage"]),
        _event("message_stop"),
    ]


def start_event(message: dict[str, Any]) -> Event:
    """message_start: the message's skeleton, before any content or stop reason."""
    skeleton = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }
    return _event("message_start", message=skeleton)


def block_events(index: int, block: dict[str, Any]) -> list[Event]:
    """A complete content block as start, one delta carrying all of it, and stop."""
    kind = block["type"]
    if kind == "tool_use":
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    else:
        start = {**block, kind: ""}
        delta = {"type": f"{kind}_delta", kind: block[kind]}
    return [
        _event("content_block_start", index=index, content_block=start),
        _event("content_block_delta", index=index, delta=delta),
        _event("content_block_stop", index=index),
    ]


def replay_events(message: dict[str, Any], message_id: str) -> list[Event]:
    """The full event sequence for a stored Message, under a fresh id (cache hits)."""
    events = [start_event({**message, "id": message_id})]
    for index, block in enumerate(message["content"]):
        events += block_events(index, block)
    return events + closing_events(message)


def _event(name: str, **fields: Any) -> Event:
    return name, {"type": name, **fields}
