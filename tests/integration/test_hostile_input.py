"""The client inputs that once gave 500: each now gets a 4xx in Anthropic's envelope."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from ollama_double.server import OllamaDouble, Reply
from proxy_app.api.nesting import MAX_DEPTH
from tests.conftest import API_KEY, LiveProxy
from tests.integration.test_errors import assert_envelope

pytestmark = pytest.mark.both_engines  # tests/conftest.py: the double and llama-server

GOOD: dict[str, Any] = {
    "model": "claude-sonnet-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "x"}],
}


def deep(levels: int) -> dict[str, Any]:
    """An object nesting `levels` deep (json_depth counts `{}` as 1)."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {**GOOD, "messages": [{"role": "user", "content": list(blocks)}]}


def in_tool_result(block: dict[str, Any]) -> dict[str, Any]:
    call = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [block]}
    return {
        **GOOD,
        "messages": [
            {"role": "user", "content": "run it"},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
        ],
    }


WRONG_TYPES = {
    "document-source-string": {"type": "document", "source": "file.pdf"},
    "document-source-number": {"type": "document", "source": 5},
    "document-data-number": {"type": "document", "source": {"type": "text", "data": 5}},
    "document-title-list": {"type": "document", "title": [1], "source": {"type": "text"}},
    "document-media-type-number": {"type": "document", "source": {"media_type": 7}},
    "document-content-text-number": {"type": "document", "content": [{"text": 5}]},
    "document-content-text-null": {"type": "document", "content": [{"type": "text", "text": None}]},
    "search-result-content-number": {"type": "search_result", "content": 5},
    "search-result-content-object": {"type": "search_result", "content": {"text": "x"}},
    "search-result-text-number": {"type": "search_result", "content": [{"text": 1}]},
    "search-result-inner-string": {"type": "search_result", "content": ["text"]},
    "search-result-title-number": {"type": "search_result", "title": 3, "content": []},
    "mid-conv-system-content-number": {"type": "mid_conv_system", "content": 9},
}


@pytest.mark.parametrize("block", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
@pytest.mark.parametrize("where", ["messages", "system", "tool_result"])
def test_wrong_field_types_are_400(proxy: LiveProxy, block: dict[str, Any], where: str) -> None:
    body = {
        "messages": user(block),
        "system": {**GOOD, "system": [block]},
        "tool_result": in_tool_result(block),
    }[where]
    response = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": API_KEY})
    assert_envelope(response, 400, "invalid_request_error", "must be")


NULL_TEXT = {"type": "document", "content": [{"type": "text", "text": None}]}


@pytest.mark.parametrize(
    ("path", "stream"),
    [("/v1/messages", False), ("/v1/messages", True), ("/v1/messages/count_tokens", None)],
)
@pytest.mark.parametrize("where", ["messages", "system", "tool_result"])
def test_a_null_document_text_is_a_400_naming_it(
    proxy: LiveProxy, path: str, stream: bool | None, where: str
) -> None:
    """Anthropic answers 400 to `document.content[].text: null`, streamed or not, and so does
    count_tokens; the message names the field."""
    body = {
        "messages": user(NULL_TEXT),
        "system": {**GOOD, "system": [NULL_TEXT]},
        "tool_result": in_tool_result(NULL_TEXT),
    }[where]
    if stream is not None:
        body = {**body, "stream": stream}
    else:
        body = {k: v for k, v in body.items() if k != "max_tokens"}
    response = httpx.post(f"{proxy.url}{path}", json=body, headers={"x-api-key": API_KEY})
    assert_envelope(response, 400, "invalid_request_error", "content.0.text: must be a string")


def test_lenient_shapes_still_pass(proxy: LiveProxy) -> None:
    body = user(
        {"type": "search_result", "title": "t", "content": "plain string"},
        {"type": "document", "source": {"type": "text", "data": "d"}, "title": None},
    )
    body["messages"].append({"role": "assistant", "content": [{"type": "tool_use", "id": "t"}]})
    body["messages"][1]["content"][0]["name"] = "Bash"
    body["messages"].append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": None}]}
    )
    response = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": API_KEY})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize("where", ["input_schema", "tool_use_input"])
def test_json_nested_past_the_limit_is_400(proxy: LiveProxy, path: str, where: str) -> None:
    if where == "input_schema":
        body = {**GOOD, "tools": [{"name": "Bash", "input_schema": deep(300)}]}
        field = "tools.0.input_schema"
    else:
        call = {"type": "tool_use", "id": "t1", "name": "Bash", "input": deep(300)}
        body = {**GOOD, "messages": [GOOD["messages"][0], {"role": "assistant", "content": [call]}]}
        field = "messages.1.content.0.input"
    response = httpx.post(f"{proxy.url}{path}", json=body, headers={"x-api-key": API_KEY})
    assert_envelope(response, 400, "invalid_request_error", field, "300 levels deep", "at most 248")


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_nesting_up_to_the_limit_is_served(proxy: LiveProxy, path: str) -> None:
    call = {"type": "tool_use", "id": "t1", "name": "Bash", "input": deep(MAX_DEPTH)}
    body = {
        **GOOD,
        "tools": [{"name": "Bash", "input_schema": deep(MAX_DEPTH)}],
        "messages": [GOOD["messages"][0], {"role": "assistant", "content": [call]}],
    }
    response = httpx.post(
        f"{proxy.url}{path}", json=body, headers={"x-api-key": API_KEY}, timeout=120
    )  # a real engine prefills the deep schemas (~1.5k tokens) on a CPU
    assert response.status_code == 200, response.text


def test_integers_past_64_bits_are_400(proxy: LiveProxy) -> None:
    body = {**GOOD, "max_tokens": 10**30}
    response = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": API_KEY})
    assert_envelope(response, 400, "invalid_request_error", "max_tokens")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/claude-sonnet-5"),
    ],
)
@pytest.mark.parametrize("header", ["x-api-key", "authorization"])
def test_non_ascii_api_key_is_401(
    proxy: LiveProxy, caplog: pytest.LogCaptureFixture, method: str, path: str, header: str
) -> None:
    value = "clé-ünïcode".encode() if header == "x-api-key" else "Bearer clé".encode()
    response = httpx.request(
        method, proxy.url + path, json=GOOD if method == "POST" else None, headers={header: value}
    )
    assert_envelope(response, 401, "authentication_error")
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("stream", [False, True])
def test_runaway_tool_arguments_from_the_model_end_the_turn(
    proxy: LiveProxy, double: OllamaDouble, stream: bool
) -> None:
    call = {"name": "Bash", "arguments": deep(900)}
    double.script(Reply("", tool_calls=[call]))
    # room for the model to write the whole call (it writes it as text, as it was trained to)
    tools = [{"name": "Bash", "input_schema": {}}]
    body = {**GOOD, "stream": stream, "tools": tools, "max_tokens": 8192}
    response = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": API_KEY})
    assert response.status_code == 200, response.text
    if stream:
        assert "event: error" not in response.text
        assert "deeper than 248 levels" in response.text
    else:
        block = response.json()["content"][0]
        assert block["type"] == "tool_use" and "deeper than 248" in block["input"]["_error"]


def test_trailing_slash_is_404_not_a_redirect(proxy: LiveProxy) -> None:
    response = httpx.post(
        f"{proxy.url}/v1/messages/",
        json=GOOD,
        headers={"x-api-key": API_KEY, "host": "evil.example"},
    )
    assert "location" not in response.headers
    assert_envelope(response, 404, "not_found_error")


def test_client_leaving_mid_body_is_not_a_server_error(
    proxy: LiveProxy, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.create_connection(("127.0.0.1", proxy.settings.port)) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"x-api-key: " + API_KEY.encode() + b"\r\ncontent-length: 1000\r\n\r\n" + b'{"model'
        )
        time.sleep(0.2)  # let the route start reading the body before the client goes
    metrics = proxy.app.state.metrics
    deadline = time.monotonic() + 5
    while not metrics.requests[("/v1/messages", 499)] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert metrics.requests[("/v1/messages", 499)] == 1
    assert not any(status >= 500 for _, status in metrics.requests)
    assert "unhandled error" not in caplog.text


def test_invalid_json_from_ollama_is_a_clean_api_error(
    proxy: LiveProxy, double: OllamaDouble, caplog: pytest.LogCaptureFixture
) -> None:
    double.script(Reply(raw_lines=["{not json"]))
    response = httpx.post(
        f"{proxy.url}/v1/messages", json={**GOOD, "stream": True}, headers={"x-api-key": API_KEY}
    )
    events = [json.loads(x[6:]) for x in response.text.splitlines() if x.startswith("data: ")]
    assert events[-1]["type"] == "error" and "non-object line" in events[-1]["error"]["message"]
    assert "unhandled error" not in caplog.text


def test_json_nested_1000_deep_is_400_with_the_cache_on(
    make_proxy: Any, redis_tls_server_fn: Any
) -> None:
    server = redis_tls_server_fn
    proxy = make_proxy(redis_url=server.url, redis_ca_file=str(server.certs.ca_file))
    schema = b'{"a":' * 999 + b"{}" + b"}" * 999  # no JSON library writes this deep
    body = json.dumps({**GOOD, "tools": [{"name": "Bash", "input_schema": "SCHEMA"}]}).encode()
    response = httpx.post(
        f"{proxy.url}/v1/messages",
        content=body.replace(b'"SCHEMA"', schema),
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
    )
    assert_envelope(response, 400, "invalid_request_error", "tools.0.input_schema", "1000 levels")
