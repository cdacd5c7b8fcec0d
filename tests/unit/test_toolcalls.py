"""Tool-call recovery (proxy_app.families.toolcalls): one parametrised test over
tests/fixtures/toolcalls.

Each fixture file is {"tools", "chunks", "expected_text", "expected_calls"}; the same case runs
streamed as given, one character at a time, in seeded random pieces, and through
recover_tool_calls.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from proxy_app.families.toolcalls import RecoveredCall, ToolCallScanner, recover_tool_calls

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "toolcalls").glob("*.json"))


def _stream(tools: list[str], chunks: list[str]) -> tuple[str, list[RecoveredCall]]:
    scanner = ToolCallScanner(tools)
    emitted = "".join(scanner.feed(chunk) for chunk in chunks)
    rest, calls = scanner.finish()
    return emitted + rest, calls


def _run(mode: str, case: dict[str, Any]) -> tuple[str, list[RecoveredCall]]:
    tools, chunks = case["tools"], case["chunks"]
    if mode == "chunks":
        return _stream(tools, chunks)
    text = "".join(chunks)
    if mode == "chars":
        return _stream(tools, list(text))
    if mode == "random":
        rng = random.Random(text)
        cuts = sorted(rng.sample(range(1, len(text)), min(8, max(len(text) - 1, 0))))
        bounds = [0, *cuts, len(text)]
        return _stream(tools, [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)])
    return recover_tool_calls(text, tools)


@pytest.mark.parametrize("mode", ["chunks", "chars", "random", "whole"])
@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_recovery(path: Path, mode: str) -> None:
    case = json.loads(path.read_text())
    text, calls = _run(mode, case)
    got = {"text": text, "calls": [asdict(call) for call in calls]}
    want = {"text": case["expected_text"], "calls": case["expected_calls"]}
    assert got == want, (
        f"{path.name} ({mode})\n"
        f"--- got\n{json.dumps(got, indent=2)}\n--- expected\n{json.dumps(want, indent=2)}"
    )


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_fixture_loses_nothing_without_calls(path: Path) -> None:
    case = json.loads(path.read_text())
    if not case["expected_calls"]:
        assert case["expected_text"] == "".join(case["chunks"])


@pytest.mark.parametrize(
    "text",
    [
        "I'll look at the project layout first, then run the tests.",
        "Use a dict like {a: 1} here, or compare a < b.\nThat is all.",
        "```python\nCONFIG = {\n    'a': [1, 2],\n}\n```\nDone.",
        "<div>\n<p>hi</p>\n</div>",
        '{"port": 8080} is the whole config.',
    ],
    ids=["prose", "braces_mid_line", "python_fence", "html", "json_not_a_call"],
)
def test_prose_streams_before_finish(text: str) -> None:
    scanner = ToolCallScanner({"Bash", "Read"})
    emitted = "".join(scanner.feed(char) for char in text)
    assert emitted == text.rstrip()
    assert scanner.finish() == (text[len(emitted) :], [])


def test_candidate_is_held_until_it_resolves() -> None:
    scanner = ToolCallScanner({"Bash"})
    assert scanner.feed("Listing:\n") == "Listing:"
    assert scanner.feed('{"name": "Bash", "arguments": ') == ""
    assert scanner.feed('{"command": "ls"}}\nDone.') == "\n\nDone."
    assert scanner.finish() == ("", [RecoveredCall("Bash", {"command": "ls"})])
