"""Property-based fuzz of the request side: whatever a client sends, the answer is < 500.

Every field of /v1/messages and /v1/messages/count_tokens and every content block kind gets
either a well-typed value or any JSON value; the proxy (a real uvicorn server in front of the
Ollama double) must answer 200 with a message, or a 4xx in Anthropic's error envelope. The
example counts are sized for CI and the search is derandomized, so every run is the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import API_KEY, LiveProxy

# A failing example's repr can pass Hypothesis' 30 kB warning, which would hide the failure.
pytestmark = [
    pytest.mark.both_engines,  # tests/conftest.py: the double and llama-server
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning"),
]

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
any_json = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a well-typed value, sometimes anything at all."""
    return st.one_of(good, good, any_json)


def obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object whose fields may each be absent."""
    return st.fixed_dictionaries({}, optional={name: field(s) for name, s in fields.items()})


short = st.text(max_size=20)
source = obj(
    type=st.sampled_from(["base64", "text", "url", "content"]),
    media_type=st.sampled_from(["image/png", "text/plain", "application/pdf"]),
    data=short,
    url=short,
)
text_blocks = st.lists(obj(type=st.just("text"), text=short), max_size=2)


def block(kind: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return obj(**fields).map(lambda b: {"type": kind, **b})


leaf_blocks = st.one_of(
    block("text", text=short, cache_control=obj(type=st.just("ephemeral"))),
    block("image", source=source),
    block("tool_use", id=short, name=short, input=st.dictionaries(short, any_json, max_size=3)),
    block("thinking", thinking=short, signature=short),
    block("redacted_thinking", data=short),
    block("document", source=source, title=short, content=text_blocks, context=short),
    block("search_result", source=short, title=short, content=text_blocks),
    block("mid_conv_system", content=text_blocks),
    block("tool_reference", tool_name=short),
    block("server_tool_use", id=short, name=short, input=any_json),
    st.builds(dict, type=st.text(max_size=8)),
    any_json,
)
blocks = st.one_of(
    leaf_blocks,
    block(
        "tool_result",
        tool_use_id=short,
        is_error=st.booleans(),
        content=st.one_of(short, st.lists(leaf_blocks, max_size=3)),
    ),
)
content = st.one_of(short, st.lists(blocks, max_size=4))
message = obj(role=st.sampled_from(["user", "assistant", "system"]), content=content)
tool = obj(
    name=short,
    description=short,
    input_schema=st.dictionaries(short, any_json, max_size=3),
    type=short,
)
base = st.fixed_dictionaries(
    {
        "model": field(st.sampled_from(["claude-sonnet-5", "qwen2.5-coder:7b"])),
        "messages": field(st.lists(message, min_size=1, max_size=3)),
    },
    optional={
        "system": field(st.one_of(short, st.lists(blocks, max_size=3))),
        "tools": field(st.lists(tool, max_size=2)),
        "tool_choice": field(
            obj(type=st.sampled_from(["auto", "any", "tool", "none"]), name=short)
        ),
        "thinking": field(obj(type=st.sampled_from(["enabled", "adaptive", "disabled"]))),
        "metadata": field(obj(user_id=short)),
    },
)
sampling = st.fixed_dictionaries(
    {"max_tokens": field(st.integers(min_value=0, max_value=64))},
    optional={
        "temperature": field(st.floats(min_value=0, max_value=2)),
        "top_p": field(st.floats(min_value=0, max_value=1)),
        "top_k": field(st.integers(min_value=0, max_value=100)),
        "stop_sequences": field(st.lists(short, max_size=2)),
    },
)
messages_bodies = st.tuples(base, sampling).map(lambda pair: {**pair[0], **pair[1]})


def check(response: httpx.Response) -> None:
    """< 500 always; an error is Anthropic's envelope; a 200 is a message or a clean stream."""
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["type"] == "error" and body["error"]["message"], body
        assert body["request_id"] == response.headers["request-id"]
    elif response.headers["content-type"].startswith("text/event-stream"):
        events = [
            json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data:")
        ]
        assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    else:
        body = response.json()
        assert body.get("type") == "message" or isinstance(body.get("input_tokens"), int), body


def run(proxy: LiveProxy, path: str, bodies: st.SearchStrategy[Any], stream: bool) -> None:
    with httpx.Client(base_url=proxy.url, headers={"x-api-key": API_KEY}, timeout=30) as client:

        @FUZZ
        @given(bodies)
        def property_holds(body: Any) -> None:
            if stream and isinstance(body, dict):
                body = {**body, "stream": True}
            check(client.post(path, json=body))

        property_holds()


def test_messages_never_5xx(proxy: LiveProxy) -> None:
    run(proxy, "/v1/messages", messages_bodies, stream=False)


def test_streamed_messages_never_5xx(proxy: LiveProxy) -> None:
    run(proxy, "/v1/messages", messages_bodies, stream=True)


def test_count_tokens_never_5xx(proxy: LiveProxy) -> None:
    run(proxy, "/v1/messages/count_tokens", base, stream=False)


def test_any_json_body_never_5xx(proxy: LiveProxy) -> None:
    run(proxy, "/v1/messages", any_json, stream=False)


def test_metrics_count_no_server_errors(make_proxy: Callable[..., LiveProxy]) -> None:
    proxy = make_proxy()
    run(proxy, "/v1/messages", messages_bodies.filter(lambda b: "tools" in b), stream=False)
    assert 'status="5' not in httpx.get(proxy.url + "/metrics").text
