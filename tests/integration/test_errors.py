"""Every error comes back in Anthropic's envelope with Anthropic's status, never FastAPI's 422."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from ollama_double.server import ERR_QUEUE_FULL, OllamaDouble, Reply
from tests.conftest import API_KEY, LiveProxy

pytestmark = pytest.mark.both_engines  # tests/conftest.py: the double and llama-server

GOOD = {
    "model": "claude-sonnet-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "x"}],
}


def post(proxy: LiveProxy, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    headers = {"x-api-key": API_KEY, **(headers or {})}
    if isinstance(body, (bytes, str)):
        return httpx.post(f"{proxy.url}/v1/messages", content=body, headers=headers)
    return httpx.post(f"{proxy.url}/v1/messages", json=body, headers=headers)


def assert_envelope(response: httpx.Response, status: int, kind: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert body["request_id"] == response.headers["request-id"]
    for word in words:
        assert word in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in GOOD.items() if k != "max_tokens"}, "max_tokens"),
        ({k: v for k, v in GOOD.items() if k != "model"}, "model"),
        ({**GOOD, "max_tokens": "many"}, "max_tokens"),
        ({**GOOD, "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({**GOOD, "messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "type"),
        ({**GOOD, "messages": "hello"}, "messages"),
        (
            {
                **GOOD,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "http://x/y.png"}}
                        ],
                    }
                ],
            },
            "base64",
        ),
        ([1, 2], "JSON object"),
    ],
    ids=[
        "no-max-tokens",
        "no-model",
        "bad-type",
        "bad-role",
        "untyped-block",
        "messages-str",
        "image-url",
        "not-object",
    ],
)
def test_bad_requests_are_400_naming_the_field(proxy: LiveProxy, body: Any, field: str) -> None:
    assert_envelope(post(proxy, body), 400, "invalid_request_error", field)


def test_malformed_json_is_400(proxy: LiveProxy) -> None:
    assert_envelope(post(proxy, b'{"model": '), 400, "invalid_request_error", "not valid JSON")


def test_body_over_the_limit_is_413(make_proxy: Any) -> None:
    proxy = make_proxy(max_body_bytes=2048)
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * 4096}]}
    assert_envelope(post(proxy, big), 413, "request_too_large", "2048")


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"authorization": "Bearer no"}])
def test_missing_or_wrong_key_is_401(proxy: LiveProxy, headers: dict[str, str]) -> None:
    response = httpx.post(f"{proxy.url}/v1/messages", json=GOOD, headers=headers)
    assert_envelope(response, 401, "authentication_error")


def test_bearer_token_is_accepted(proxy: LiveProxy) -> None:
    response = httpx.post(
        f"{proxy.url}/v1/messages", json=GOOD, headers={"authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 200


def test_sdk_raises_its_error_classes(proxy: LiveProxy, double: OllamaDouble) -> None:
    bad_key = anthropic.Anthropic(base_url=proxy.url, api_key="nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad_key.messages.create(**GOOD)
    client = anthropic.Anthropic(base_url=proxy.url, api_key=API_KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(**{**GOOD, "messages": [{"role": "robot", "content": "x"}]})
    double.script(Reply.http_error(503, ERR_QUEUE_FULL))
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(**GOOD)
    assert caught.value.status_code == 529
    assert caught.value.response.headers["retry-after"] == "5"


def test_prompt_over_the_context_is_400_prompt_too_long(make_proxy: Any) -> None:
    proxy = make_proxy(num_ctx=1024, output_reserve=0)
    big = {**GOOD, "messages": [{"role": "user", "content": "word " * 4000}]}
    response = post(proxy, {**big, "stream": True})
    assert_envelope(response, 400, "invalid_request_error", "prompt is too long:", "> 1024 maximum")


def test_ollama_overflow_is_400_too(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply.http_error(400, "the input length exceeds the context length"))
    response = post(proxy, GOOD)
    # the window less the room kept for the answer: max_tokens, here smaller than the reserve
    limit = 32768 - GOOD["max_tokens"]
    assert_envelope(response, 400, "invalid_request_error", "prompt is too long:", f"> {limit} max")


def test_unreachable_ollama_is_529(make_proxy: Any, double: OllamaDouble) -> None:
    proxy = make_proxy()
    proxy.services.catalog._models = {"qwen2.5-coder:7b": {"digest": "x"}}
    proxy.services.catalog._fetched = float("inf")
    double.stop()
    response = post(proxy, GOOD)
    assert_envelope(response, 529, "overloaded_error", "unreachable")


def test_unknown_path_and_method(proxy: LiveProxy) -> None:
    assert_envelope(httpx.get(proxy.url + "/v2/nothing"), 404, "not_found_error")
    assert_envelope(httpx.get(proxy.url + "/v1/messages"), 404, "not_found_error", "GET")


def test_auth_off_only_on_loopback() -> None:
    from pydantic import ValidationError

    from proxy_app.config import Settings

    with pytest.raises(ValidationError, match="PROXY_API_KEYS is empty"):
        Settings(host="0.0.0.0", api_keys=[])
    assert Settings(host="0.0.0.0", api_keys=["k"]).host == "0.0.0.0"
