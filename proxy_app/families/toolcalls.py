"""Recover tool calls that qwen2.5-coder wrote as text instead of structured `tool_calls`.

The model often drops the `<tool_call>` tag and writes bare JSON or a fenced json block, which
Ollama then returns as plain content (ollama #12174, #15529). Only when tools were offered, text
is scanned for `<tool_call>…</tool_call>`, `<tools>…</tools>`, ```json / ``` fences and bare JSON
starting a line; a candidate becomes a call only if every JSON value in it names an offered tool
with an object of arguments. Anything else is released verbatim, in order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

from proxy_app.api.nesting import MAX_DEPTH, fits_as_arguments


@dataclass(frozen=True)
class RecoveredCall:
    """A tool call found in the assistant's text."""

    name: str
    input: dict[str, Any]


class _Phase(Enum):
    TEXT = auto()  # plain prose: emit it
    OPENER = auto()  # `<…` or a backtick run: is it a tag or a json fence?
    BODY = auto()  # inside a tag or fence, between JSON values
    VALUE = auto()  # inside a JSON value


class _JsonEnd:
    """Find where a JSON value ends, incrementally, ignoring brackets inside strings."""

    def __init__(self, start: int) -> None:
        self.pos = start
        self.depth = 0
        self.in_string = False

    def scan(self, text: str) -> int | None:
        """Return the index just past the value, or None if it has not closed yet."""
        while True:
            run = (_STRING_RUN if self.in_string else _PLAIN_RUN).match(text, self.pos)
            assert run is not None  # a starred pattern always matches
            self.pos = run.end()
            if self.pos >= len(text):
                return None
            char = text[self.pos]
            if self.in_string and char == "\\":
                if self.pos + 1 >= len(text):
                    return None
                self.pos += 1
            elif self.in_string or char == '"':
                self.in_string = not self.in_string
            elif char in "{[":
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 0:
                    return self.pos + 1
            self.pos += 1


class ToolCallScanner:
    """Feed assistant text as it streams; emits the text that is safe to show now and holds back
    anything that may turn out to be a tool call written as text.

    Trailing whitespace is held too, so that whitespace around a removed call can be dropped.

        scanner = ToolCallScanner({"Bash"})
        scanner.feed('Listing:\\n{"name": "Bash", ')  # -> "Listing:"
        scanner.feed('"arguments": {"command": "ls"}}')  # -> ""
        scanner.finish()  # -> ("", [RecoveredCall("Bash", {"command": "ls"})])
    """

    def __init__(self, tool_names: Collection[str]) -> None:
        self._names = frozenset(tool_names)
        self._buf = ""  # received, not yet emitted; in a candidate phase it starts at the candidate
        self._phase = _Phase.TEXT
        self._pos = 0  # BODY: parse cursor in _buf
        self._closer = ""  # closing tag or fence of the current candidate; "" for bare JSON
        self._value = _JsonEnd(0)  # VALUE: scanner of the current JSON value
        self._value_start = 0
        self._found: list[RecoveredCall] = []  # calls in the current candidate, not yet accepted
        self._calls: list[RecoveredCall] = []
        self._out: list[str] = []
        self._gap = ""  # trailing whitespace of the prose, held back
        self._bol = True  # is the start of _buf at the beginning of a line?
        self._in_code = False  # inside a non-json fence: only a fence at a line start matters
        self._after_call = False  # drop whitespace right after a removed call
        self._emitted = False

    def feed(self, chunk: str) -> str:
        """Take the next chunk of text; return the text that is safe to emit now."""
        if not self._names:
            return chunk
        self._buf += chunk
        return self._run(final=False)

    def finish(self) -> tuple[str, list[RecoveredCall]]:
        """End the turn: return the remaining text to emit and every call recovered."""
        if not self._names:
            return "", []
        text = self._run(final=True) + self._gap
        self._gap = ""
        return text, self._calls

    def _run(self, final: bool) -> str:
        steps = {
            _Phase.TEXT: self._step_text,
            _Phase.OPENER: self._step_opener,
            _Phase.BODY: self._step_body,
            _Phase.VALUE: self._step_value,
        }
        while steps[self._phase](final):
            pass
        text = "".join(self._out)
        self._out.clear()
        return text

    def _step_text(self, _final: bool) -> bool:
        bol = self._bol
        for index, char in enumerate(self._buf):
            if self._starts_candidate(char, bol):
                self._release(index)
                self._phase = _Phase.VALUE if char in "{[" else _Phase.OPENER
                self._value, self._value_start, self._closer = _JsonEnd(0), 0, ""
                return True
            if char == "\n":
                bol = True
            elif char not in " \t\r":
                bol = False
        self._release(len(self._buf))
        return False

    def _starts_candidate(self, char: str, bol: bool) -> bool:
        if self._in_code:  # only the closing fence matters
            return bol and char == "`"
        return char in "<`" or bol and char in "{["

    def _step_opener(self, final: bool) -> bool:
        buf = self._buf
        for tag, closer in _TAGS:
            if buf.startswith(tag):
                return self._open_body(len(tag), closer)
        if buf.startswith("```"):
            if self._in_code:  # the closing fence of a code block
                return self._reject(3)
            newline = buf.find("\n", 3)
            info = buf[3 : newline if newline >= 0 else None].strip().lower()
            if newline >= 0 and info in ("", "json"):
                return self._open_body(newline + 1, "```")
            if newline >= 0 or not "json".startswith(info):
                return self._reject(newline + 1 if newline >= 0 else len(buf), in_code=True)
        elif not any(opener.startswith(buf) for opener in _OPENERS):
            return self._reject(1, in_code=self._in_code)
        return final and self._reject(len(buf))

    def _step_body(self, final: bool) -> bool:
        start = len(self._buf) - len(self._buf[self._pos :].lstrip())
        rest = self._buf[start:]
        if rest.startswith(self._closer):
            return self._accept(start + len(self._closer))
        if rest[:1] in ("{", "["):
            self._phase, self._value, self._value_start = _Phase.VALUE, _JsonEnd(start), start
            return True
        if rest and not self._closer.startswith(rest):
            if self._found and self._closer != "```":  # a tag left open; its calls still count
                return self._accept(start)
            return self._reject(start, in_code=self._closer == "```")
        return final and self._accept(len(self._buf))

    def _step_value(self, final: bool) -> bool:
        fenced = self._closer == "```"
        start = self._value_start
        if not _PLAUSIBLE_START.match(self._buf, start):
            return self._reject(start + 1, in_code=fenced)
        end = self._value.scan(self._buf)
        if end is None:
            return final and self._reject(len(self._buf))
        calls = _parse_calls(self._buf[start:end], self._names)
        if calls is None:
            return self._reject(end, in_code=fenced)
        self._found.extend(calls)
        if not self._closer:
            return self._accept(end)
        self._phase, self._pos = _Phase.BODY, end
        return True

    def _open_body(self, pos: int, closer: str) -> bool:
        self._phase, self._pos, self._closer = _Phase.BODY, pos, closer
        return True

    def _accept(self, end: int) -> bool:
        """Turn the candidate's first `end` characters into its calls (text if it has none)."""
        if not self._found:
            return self._reject(end)
        self._calls.extend(self._found)
        self._found = []
        self._buf = self._buf[end:]
        self._phase, self._gap, self._bol, self._after_call = _Phase.TEXT, "", True, True
        return True

    def _reject(self, end: int, in_code: bool = False) -> bool:
        """Release the candidate's first `end` characters as text; rescan the rest."""
        self._found = []
        self._release(end)
        self._phase, self._in_code = _Phase.TEXT, in_code
        return True

    def _release(self, end: int) -> None:
        """Emit `_buf[:end]` as prose, holding its trailing whitespace."""
        text, self._buf = self._buf[:end], self._buf[end:]
        if "\n" in text:
            self._bol = not text.rsplit("\n", 1)[1].strip(" \t\r")
        elif text.strip(" \t\r"):
            self._bol = False
        if self._after_call:
            text = text.lstrip()
            if not text:
                return
            self._after_call = False
            text = "\n\n" + text if self._emitted else text
        text = self._gap + text
        body = text.rstrip()
        self._gap = text[len(body) :]
        if body:
            self._emitted = True
            self._out.append(body)


def recover_tool_calls(text: str, tool_names: Collection[str]) -> tuple[str, list[RecoveredCall]]:
    """Non-streaming convenience: whole text -> (text left after removing the calls, calls)."""
    scanner = ToolCallScanner(tool_names)
    head = scanner.feed(text)
    tail, calls = scanner.finish()
    return head + tail, calls


def _parse_calls(raw: str, names: frozenset[str]) -> list[RecoveredCall] | None:
    """Parse a call object or a list of them; None unless every item is a call."""
    try:
        value = json.loads(raw, strict=False)  # qwen sometimes leaves raw newlines in strings
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [call for call in (_as_call(item, names) for item in items) if call is not None]
    return calls if items and len(calls) == len(items) else None


def _as_call(item: Any, names: frozenset[str]) -> RecoveredCall | None:
    if not isinstance(item, dict):
        return None
    if item.get("type") == "function" and isinstance(item.get("function"), dict):
        item = item["function"]
    name = item.get("name")
    arguments = item.get("arguments", item.get("parameters"))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, strict=False)
        except ValueError:
            return None
    if not isinstance(name, str) or name not in names or not isinstance(arguments, dict):
        return None
    return RecoveredCall(name, arguments)


_TAGS = (("<tool_call>", "</tool_call>"), ("<tools>", "</tools>"))
_OPENERS = ("<tool_call>", "<tools>", "```")
_PLAIN_RUN = re.compile(r'[^"{}\[\]]*')
_STRING_RUN = re.compile(r'[^"\\]*')
# A call object starts `{"`, a list of them `[{"`; `\Z` means "need more text to tell".
_PLAUSIBLE_START = re.compile(r'\{\s*(?:"|\Z)|\[\s*(?:\Z|\{\s*(?:"|\Z))')


def tool_input_json(arguments: Any) -> dict[str, Any]:
    """Ollama sends arguments as an object; some models emit a JSON string instead.

    Arguments nested deeper than MAX_DEPTH (a runaway model) cannot be serialised again;
    they are replaced by a sentence the client's tool will reject, so the turn still ends.
    """
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return {"_raw": arguments}
    if not fits_as_arguments(arguments):
        return {"_error": f"the model's arguments nest deeper than {MAX_DEPTH} levels"}
    return arguments if isinstance(arguments, dict) else {"_value": arguments}
