"""qwen3-coder's XML tool calls (proxy_app.families.xmlcalls), chained with the JSON rescue as the
streaming machine uses them: one parametrised test over tests/fixtures/xmlcalls.

Each fixture file is {"tools": {name: input_schema}, "chunks", "expected_text",
"expected_calls"}; every case runs streamed as given, one character at a time, in seeded random
pieces, and whole.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from proxy_app.families.xmlcalls import CallRescue, typed

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "xmlcalls").glob("*.json"))


def _stream(tools: dict[str, Any], chunks: list[str]) -> dict[str, Any]:
    rescue = CallRescue(tools)
    text = "".join(rescue.feed(chunk) for chunk in chunks)
    rest, calls = rescue.finish()
    return {"text": text + rest, "calls": [asdict(call) for call in calls]}


def _pieces(text: str, mode: str) -> list[str]:
    if mode == "chars":
        return list(text)
    if mode == "whole":
        return [text]
    rng = random.Random(text)
    cuts = sorted(rng.sample(range(1, len(text)), min(12, max(len(text) - 1, 0))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@pytest.mark.parametrize("mode", ["chunks", "chars", "random", "whole"])
@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_recovery(path: Path, mode: str) -> None:
    case = json.loads(path.read_text())
    chunks = case["chunks"] if mode == "chunks" else _pieces("".join(case["chunks"]), mode)
    got = _stream(case["tools"], chunks)
    want = {"text": case["expected_text"], "calls": case["expected_calls"]}
    assert got == want, (
        f"{path.name} ({mode})\n"
        f"--- got\n{json.dumps(got, indent=2)}\n--- expected\n{json.dumps(want, indent=2)}"
    )


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_text_without_calls_is_kept_byte_for_byte(path: Path) -> None:
    case = json.loads(path.read_text())
    if not case["expected_calls"]:
        assert case["expected_text"] == "".join(case["chunks"])


@pytest.mark.parametrize(
    ("raw", "schema", "value"),
    [
        ("42", {"type": "integer"}, 42),
        ("4.0", {"type": "integer"}, "4.0"),  # does not fit: stays a string
        ("2.5", {"type": "number"}, 2.5),
        ("3", {"type": ["number", "null"]}, 3),
        ("False", {"type": "boolean"}, False),
        ("yes", {"type": "boolean"}, "yes"),
        ('["a", 1]', {"type": "array"}, ["a", 1]),
        ('{"a": 1}', {"type": "array"}, '{"a": 1}'),
        ('{"a": 1}', {"type": "object"}, {"a": 1}),
        ("null", {"anyOf": [{"type": "integer"}, {"type": "null"}]}, None),
        ("null", {"type": "string"}, "null"),
        ('{"a": 1}', {"type": "string"}, '{"a": 1}'),
        ("12", {}, "12"),  # no declared type: the raw text
    ],
)
def test_values_take_the_declared_type(raw: str, schema: dict[str, Any], value: Any) -> None:
    assert typed(raw, schema) == value
