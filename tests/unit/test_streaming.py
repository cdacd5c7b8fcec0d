"""AnthropicEventStream: every scenario's events obey the Messages API stream grammar."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy_app.api.streaming import AnthropicEventStream, Event, StopMatcher, replay_events


def chunk(content: str = "", **message: Any) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": content, **message}, "done": False}


def final(reason: str = "stop", prompt: int = 10, output: int = 3) -> dict[str, Any]:
    return {
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": reason,
        "prompt_eval_count": prompt,
        "eval_count": output,
    }


def run(
    chunks: list[dict[str, Any]], tools: list[str] = (), stops: list[str] = ()
) -> tuple[list[Event], AnthropicEventStream]:
    machine = AnthropicEventStream(
        model="claude-x", input_tokens=99, tool_names=list(tools), stop_sequences=list(stops)
    )
    events = machine.start()
    for item in chunks:
        events += machine.finish(item) if item["done"] else machine.feed(item)
        if machine.done:
            break
    return events, machine


def check_grammar(events: list[Event]) -> dict[str, Any]:
    """Assert the wire grammar and rebuild the message the way the SDK accumulates it."""
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    for name, data in events:
        assert data["type"] == name
    message = dict(events[0][1]["message"])
    assert message["content"] == [] and message["stop_reason"] is None
    assert message["usage"]["input_tokens"] > 0
    content: list[dict[str, Any]] = []
    open_index = None
    partial: dict[int, str] = {}
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == len(content)
            open_index = data["index"]
            content.append(dict(data["content_block"]))
        elif name == "content_block_delta":
            assert data["index"] == open_index
            delta = data["delta"]
            block = content[open_index]
            if delta["type"] == "text_delta":
                assert block["type"] == "text"
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            else:
                assert delta["type"] == "input_json_delta" and block["type"] == "tool_use"
                partial[open_index] = partial.get(open_index, "") + delta["partial_json"]
        elif name == "content_block_stop":
            assert data["index"] == open_index
            if content[open_index]["type"] == "tool_use":
                content[open_index]["input"] = json.loads(partial[open_index])
            open_index = None
    assert open_index is None
    delta = events[-2][1]
    message.update(content=content, **delta["delta"], usage=delta["usage"])
    return message


SCENARIOS = {
    "text": ([chunk("Hel"), chunk("lo"), final()], [], []),
    "empty": ([final()], [], []),
    "thinking-then-text": ([chunk(thinking="hmm"), chunk("42"), final()], [], []),
    "structured-tool": (
        [
            chunk("Let me look."),
            chunk(tool_calls=[{"function": {"name": "Read", "arguments": {"file_path": "/a"}}}]),
            final(),
        ],
        ["Read"],
        [],
    ),
    "two-tools": (
        [
            chunk(
                tool_calls=[
                    {"function": {"name": "Read", "arguments": {"file_path": "/a"}}},
                    {"function": {"name": "Bash", "arguments": {"command": "ls"}}},
                ]
            ),
            final(),
        ],
        ["Read", "Bash"],
        [],
    ),
    "bare-json-rescue": (
        [chunk('{"name": "Bash", '), chunk('"arguments": {"command": "ls"}}'), final()],
        ["Bash"],
        [],
    ),
    "length": ([chunk("cut"), final("length")], [], []),
    "stop-sequence-split": (
        [chunk("one tw"), chunk("o STO"), chunk("P three"), final()],
        [],
        ["STOP"],
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_events_follow_the_grammar_and_match_the_message(name: str) -> None:
    chunks, tools, stops = SCENARIOS[name]
    events, machine = run(chunks, tools, stops)
    rebuilt = check_grammar(events)
    expected = machine.message()
    assert rebuilt["content"] == expected["content"]
    assert rebuilt["stop_reason"] == expected["stop_reason"]
    assert rebuilt["stop_sequence"] == expected["stop_sequence"]
    assert check_grammar(replay_events(expected, "msg_new"))["content"] == expected["content"]


def test_stop_reasons() -> None:
    assert run(SCENARIOS["text"][0])[1].stop_reason == "end_turn"
    assert run(SCENARIOS["length"][0])[1].stop_reason == "max_tokens"
    assert run(*SCENARIOS["structured-tool"])[1].stop_reason == "tool_use"
    assert run(*SCENARIOS["bare-json-rescue"])[1].stop_reason == "tool_use"
    machine = run(*SCENARIOS["stop-sequence-split"])[1]
    assert (machine.stop_reason, machine.message()["stop_sequence"]) == ("stop_sequence", "STOP")
    assert machine.message()["content"][0]["text"] == "one two "


def test_usage_comes_from_ollamas_counts() -> None:
    _, machine = run([chunk("hi"), final(prompt=1234, output=56)])
    assert machine.message()["usage"] == {"input_tokens": 1234, "output_tokens": 56}


def test_tool_ids_are_toolu_and_stable() -> None:
    events, machine = run(*SCENARIOS["structured-tool"])
    started = [
        d["content_block"]["id"]
        for n, d in events
        if n == "content_block_start" and d["content_block"]["type"] == "tool_use"
    ]
    assert started == [b["id"] for b in machine.content if b["type"] == "tool_use"]
    assert started[0].startswith("toolu_")


@pytest.mark.parametrize("pieces", [["abcSTOPdef"], ["abcST", "OPdef"], ["a", "b", "cS", "T", "O"]])
def test_stop_matcher_across_chunks(pieces: list[str]) -> None:
    matcher = StopMatcher(["STOP"])
    emitted = "".join(matcher.feed(p) for p in pieces)
    if matcher.matched is None:
        emitted += matcher.flush()
        assert emitted == "".join(pieces)
    else:
        assert emitted == "abc"
