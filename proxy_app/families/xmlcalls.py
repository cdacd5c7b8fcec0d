"""Recover tool calls that qwen3-coder wrote as text in its XML-style format.

qwen3-coder calls a tool as
`<tool_call>\\n<function=NAME>\\n<parameter=KEY>\\nVALUE\\n</parameter>\\n</function>\\n</tool_call>`
with raw-text values (Ollama's parser: model/parsers/qwen3coder.go). When Ollama's parser
misses it (malformed output, ollama#11621), the call arrives as content. This scanner finds it,
streaming included, and also accepts the malformed shapes seen in practice: a missing
`</parameter>`, `</function>` or `</tool_call>`, no `<tool_call>` wrapper, parameters after
`</function>`, a JSON object of arguments inside one parameter, several calls in one answer.
A candidate becomes calls only if every function names an offered tool; otherwise it is
released as text, byte for byte. Values are typed by the tool's `input_schema` (see `typed`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from proxy_app.families.toolcalls import RecoveredCall, ToolCallScanner

WRAP, UNWRAP = "<tool_call>", "</tool_call>"
FUNCTION, END_FUNCTION = "<function=", "</function>"
OPENERS = (WRAP, FUNCTION)
_PARAMETER = re.compile(
    r"<parameter=([^>\n]+)>(.*?)(?:</parameter>|(?=<parameter=|</function>|<function=|\Z))", re.S
)
_FUNCTION_TAG = re.compile(r"<function=([^>\n]+)>")


class XmlCallScanner:
    """Feed assistant text as it streams; returns the text safe to show now, holding back any
    candidate call until it closes (or the answer ends) and is decided."""

    def __init__(self, schemas: dict[str, dict[str, Any]]) -> None:
        self._schemas = schemas
        self._buf = ""
        self._in_call = False
        self._after_call = False
        self._gap = ""  # whitespace before a pending candidate: dropped if it is a call
        self._emitted = False  # prose went out already (text after a call is set apart)
        self._calls: list[RecoveredCall] = []

    def feed(self, chunk: str) -> str:
        if not self._schemas:
            return chunk
        self._buf += chunk
        return self._run(final=False)

    def finish(self) -> tuple[str, list[RecoveredCall]]:
        if not self._schemas:
            return "", []
        return self._run(final=True), self._calls

    def _run(self, final: bool) -> str:
        out: list[str] = []
        while True:
            if not self._in_call:
                start = _first_opener(self._buf)
                if start is None:
                    keep = 0 if final else _held_tail(self._buf)
                    out.append(self._text(self._buf[: len(self._buf) - keep]))
                    self._buf = self._buf[len(self._buf) - keep :]
                    return "".join(out)
                prose = self._buf[:start]
                body = prose.rstrip()
                out.append(self._text(body))
                self._gap = prose[len(body) :]
                self._buf, self._in_call = self._buf[start:], True
            end = _candidate_end(self._buf, final)
            if end is None:
                return "".join(out)
            candidate, self._buf, self._in_call = self._buf[:end], self._buf[end:], False
            calls = parse_calls(candidate, self._schemas)
            gap, self._gap = self._gap, ""
            if calls is None:  # not a call after all: it is text, and scanning goes on after it
                out.append(self._text(gap + candidate, keep_space=True))
                continue
            self._calls.extend(calls)
            self._after_call = True

    def _text(self, text: str, keep_space: bool = False) -> str:
        """Prose to emit; the whitespace right after a removed call becomes one blank line
        between the prose before and after it (nothing when the call came first)."""
        if self._after_call and not keep_space:
            text = text.lstrip()
            if not text:
                return ""
            text = "\n\n" + text if self._emitted else text
        self._after_call = self._after_call and not text
        self._emitted = self._emitted or bool(text)
        return text


class CallRescue:
    """Both rescues in a row: qwen3-coder's XML calls first, then the JSON ones (toolcalls.py)
    in the text the first lets through."""

    def __init__(self, schemas: dict[str, dict[str, Any]]) -> None:
        self._xml = XmlCallScanner(schemas)
        self._json = ToolCallScanner(schemas)

    def feed(self, chunk: str) -> str:
        return self._json.feed(self._xml.feed(chunk))

    def finish(self) -> tuple[str, list[RecoveredCall]]:
        text, xml_calls = self._xml.finish()
        text = self._json.feed(text)
        rest, json_calls = self._json.finish()
        return text + rest, xml_calls + json_calls


def parse_calls(text: str, schemas: dict[str, dict[str, Any]]) -> list[RecoveredCall] | None:
    """All calls in a candidate, or None when any function is unknown or there is none."""
    body = text.replace(WRAP, "").replace(UNWRAP, "")
    tags = list(_FUNCTION_TAG.finditer(body))
    if not tags or body[: tags[0].start()].strip():
        return None  # parameters (or anything) before the first function: not a call
    calls = []
    for i, tag in enumerate(tags):
        name = tag.group(1).strip()
        if name not in schemas:
            return None
        end = tags[i + 1].start() if i + 1 < len(tags) else len(body)
        segment = body[tag.end() : end].replace(END_FUNCTION, "")
        calls.append(RecoveredCall(name, _arguments(segment, schemas[name])))
    return calls


def typed(raw: str, schema: dict[str, Any] | None) -> Any:
    """A raw parameter value as the type the schema declares; what does not fit stays a str."""
    kinds = _types(schema or {})
    if raw.lower() == "null" and "string" not in kinds:
        return None
    for kind, parse in _PARSERS.items():  # in this order: "1" is an integer before a number
        if kind in kinds:
            value = parse(raw)
            if value is not _UNFIT:
                return value
    return raw


_UNFIT = object()  # a parser's answer when the text is not of its type


def _boolean(raw: str) -> Any:
    return raw.lower() == "true" if raw.lower() in ("true", "false") else _UNFIT


def _integer(raw: str) -> Any:
    return int(raw) if re.fullmatch(r"[+-]?\d+", raw.strip()) else _UNFIT


def _number(raw: str) -> Any:
    try:
        number = float(raw)
    except ValueError:
        return _UNFIT
    return int(number) if number.is_integer() and "." not in raw else number


def _json_of(python: type) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = json.loads(raw)
        except ValueError:
            return _UNFIT
        return value if isinstance(value, python) else _UNFIT

    return parse


_PARSERS: dict[str, Callable[[str], Any]] = {
    "boolean": _boolean,
    "integer": _integer,
    "number": _number,
    "array": _json_of(list),
    "object": _json_of(dict),
}


def _arguments(segment: str, schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for match in _PARAMETER.finditer(segment):
        key, raw = match.group(1).strip(), _trim_newline(match.group(2))
        if key not in properties:
            spread = _json_object(raw)
            if spread is not None and set(spread) <= set(properties):  # all args in one param
                arguments.update(spread)
                continue
        arguments[key] = typed(raw, properties.get(key))
    if not arguments:  # a JSON object of arguments as the function's body
        spread = _json_object(_trim_newline(_PARAMETER.sub("", segment)).strip())
        arguments = spread or {}
    return arguments


def _types(schema: dict[str, Any]) -> set[str]:
    kinds = schema.get("type")
    found = {kinds} if isinstance(kinds, str) else set(kinds or ())
    for option in schema.get("anyOf") or ():
        found |= _types(option)
    return found


def _json_object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw, strict=False)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _trim_newline(raw: str) -> str:
    """One newline either side belongs to the format, not the value (as in Ollama's parser)."""
    raw = raw[1:] if raw.startswith("\n") else raw
    return raw[:-1] if raw.endswith("\n") else raw


def _first_opener(text: str) -> int | None:
    found = [i for i in (text.find(opener) for opener in OPENERS) if i >= 0]
    return min(found, default=None)


def _held_tail(text: str) -> int:
    """Length of the end of `text` that may begin an opener, plus the whitespace before it."""
    held = 0
    for opener in OPENERS:
        for size in range(min(len(opener) - 1, len(text)), 0, -1):
            if text.endswith(opener[:size]):
                held = max(held, size)
                break
    body = text[: len(text) - held]
    return held + len(body) - len(body.rstrip())


def _candidate_end(text: str, final: bool) -> int | None:
    """Where the candidate at the start of `text` ends, or None while it may still grow."""
    if text.startswith(WRAP):
        close = text.find(UNWRAP)
        nxt = text.find(WRAP, len(WRAP))
        if close >= 0 and (nxt < 0 or close < nxt):
            return close + len(UNWRAP)
        if nxt >= 0:  # a new call began: this one was never closed
            return nxt
        return len(text) if final else None
    close = text.find(END_FUNCTION)
    starts = [i for i in (text.find(FUNCTION, 1), text.find(WRAP)) if i >= 0]
    if starts and (close < 0 or min(starts) < close):
        return min(starts)
    if close < 0:
        return len(text) if final else None
    end = close + len(END_FUNCTION)
    while (stray := _STRAY_PARAMETER.match(text, end)) is not None:  # parameters after the close
        end = stray.end()
    rest = text[end:].lstrip()
    if rest.startswith(UNWRAP):
        return len(text) - len(rest) + len(UNWRAP)
    if not final and any(p.startswith(rest) or rest.startswith(p) for p in _MAY_FOLLOW):
        return None  # cannot tell yet whether more of this call follows
    return end


_STRAY_PARAMETER = re.compile(r"\s*<parameter=[^>\n]+>.*?</parameter>", re.S)
_MAY_FOLLOW = ("<parameter=", UNWRAP)
