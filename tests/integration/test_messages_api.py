"""The Messages API end to end: the official anthropic SDK → proxy_app → the Ollama double."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import pytest

from ollama_double.server import OllamaDouble, Reply
from tests.conftest import API_KEY, LiveProxy

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def sdk(proxy: LiveProxy, key: str = API_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=key, max_retries=0)


def ask(proxy: LiveProxy, **kwargs: Any) -> Any:
    params: dict[str, Any] = {
        "model": "claude-sonnet-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "hi"}],
    }
    params.update(kwargs)
    return sdk(proxy).messages.create(**params)


def last_chat(double: OllamaDouble) -> dict[str, Any]:
    body: dict[str, Any] = double.chat_requests[-1]
    return body


def test_create_returns_the_models_text(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("Hello there, friend", prompt_eval_count=42, eval_count=5))
    message = ask(proxy)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello there, friend"
    assert message.model == "claude-sonnet-5"
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (42, 5)
    sent = last_chat(double)
    assert sent["model"] == "qwen2.5-coder:7b"
    assert sent["options"]["num_ctx"] == 32768
    assert sent["options"]["num_predict"] == 256
    assert sent["truncate"] is False


def test_stream_yields_text_and_final_message(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("one two three four"))
    with sdk(proxy).messages.stream(
        model="claude-sonnet-5", max_tokens=64, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two three four"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"


def test_sampling_parameters_are_mapped(proxy: LiveProxy, double: OllamaDouble) -> None:
    ask(proxy, extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 20}, max_tokens=99)
    options = last_chat(double)["options"]
    assert options == {
        "num_ctx": 32768,
        "num_predict": 99,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 20,
    }


def test_structured_tool_call_round_trip(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]))
    first = ask(proxy, tools=[WEATHER_TOOL])
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.input == {"city": "Paris"}
    assert call.id.startswith("toolu_")
    prompt = last_chat(double)["prompt"]  # qwen2.5-coder: the published template, sent raw
    assert last_chat(double)["raw"] is True
    listed = prompt.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    assert json.loads(listed)["function"]["name"] == "get_weather"
    assert json.loads(listed)["function"]["parameters"] == WEATHER_TOOL["input_schema"]

    double.script(Reply("It is sunny in Paris."))
    history = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [c.model_dump() for c in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
        },
    ]
    second = ask(proxy, tools=[WEATHER_TOOL], messages=history)
    assert second.content[0].text == "It is sunny in Paris."
    prompt = last_chat(double)["prompt"]
    call_then_result = (
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Paris"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n'
        "sunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    assert prompt.endswith(call_then_result)


@pytest.mark.parametrize(
    "written",
    [
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        'Checking.\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    ],
    ids=["bare-json", "fenced", "tagged"],
)
@pytest.mark.parametrize("streamed", [False, True], ids=["message", "stream"])
def test_qwen_rescue_turns_text_into_tool_use(
    proxy: LiveProxy, double: OllamaDouble, written: str, streamed: bool
) -> None:
    double.script(Reply(written, chunks=7))
    if streamed:
        with sdk(proxy).messages.stream(
            model="claude-sonnet-5",
            max_tokens=64,
            tools=[WEATHER_TOOL],
            messages=[{"role": "user", "content": "weather?"}],
        ) as stream:
            message = stream.get_final_message()
    else:
        message = ask(proxy, tools=[WEATHER_TOOL])
    calls = [block for block in message.content if block.type == "tool_use"]
    assert [(c.name, c.input) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert message.stop_reason == "tool_use"
    texts = "".join(block.text for block in message.content if block.type == "text")
    assert "get_weather" not in texts


def test_json_for_an_unknown_tool_stays_text(proxy: LiveProxy, double: OllamaDouble) -> None:
    written = '{"name": "launch_rockets", "arguments": {}}'
    double.script(Reply(written))
    message = ask(proxy, tools=[WEATHER_TOOL])
    assert message.stop_reason == "end_turn"
    assert message.content[0].text == written


def test_tool_choice_none_sends_no_tools(proxy: LiveProxy, double: OllamaDouble) -> None:
    ask(proxy, tools=[WEATHER_TOOL], tool_choice={"type": "none"})
    assert "tools" not in last_chat(double)


def test_stop_sequence_is_reported(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("alpha beta END gamma delta", chunks=5))
    message = ask(proxy, stop_sequences=["END"])
    assert message.content[0].text == "alpha beta "
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")


def test_length_maps_to_max_tokens(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("cut sho", done_reason="length"))
    assert ask(proxy).stop_reason == "max_tokens"


def test_max_tokens_zero_answers_without_generating(proxy: LiveProxy, double: OllamaDouble) -> None:
    message = ask(proxy, max_tokens=0)
    assert message.content == []
    assert double.chat_requests == []


def test_claude_ids_and_aliases_resolve(make_proxy: Any, double: OllamaDouble) -> None:
    double.add_model("qwen2.5-coder:1.5b")
    proxy = make_proxy(model_aliases={"haiku": "qwen2.5-coder:1.5b"})
    ask(proxy, model="claude-haiku-4-5-20251001")
    assert last_chat(double)["model"] == "qwen2.5-coder:1.5b"
    ask(proxy, model="claude-opus-5-5")
    assert last_chat(double)["model"] == "qwen2.5-coder:7b"
    ask(proxy, model="qwen2.5-coder:1.5b")
    assert last_chat(double)["model"] == "qwen2.5-coder:1.5b"


def test_missing_model_is_404_saying_to_pull(proxy: LiveProxy) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        ask(proxy, model="llama3:70b")
    assert "llama3:70b" in str(caught.value) and "ollama pull" in str(caught.value)


def test_thinking_on_a_model_that_cannot_think_is_ignored(
    proxy: LiveProxy, double: OllamaDouble
) -> None:
    message = ask(proxy, thinking={"type": "enabled", "budget_tokens": 2048}, max_tokens=4096)
    assert message.stop_reason == "end_turn"
    assert "think" not in last_chat(double)


def test_thinking_model_gets_think_and_streams_thinking(
    make_proxy: Any, double: OllamaDouble
) -> None:
    double.thinking_models.add("qwen3:8b")
    double.add_model("qwen3:8b")
    double.script(Reply("42", thinking="let me think"))
    proxy = make_proxy()
    with sdk(proxy).messages.stream(
        model="qwen3:8b",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "answer?"}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "let me think"
    assert last_chat(double)["think"] is True


def test_count_tokens_grows_with_tools(proxy: LiveProxy) -> None:
    client = sdk(proxy)
    messages = [{"role": "user", "content": "hello " * 200}]
    plain = client.messages.count_tokens(model="claude-sonnet-5", messages=messages)
    with_tools = client.messages.count_tokens(
        model="claude-sonnet-5", messages=messages, tools=[WEATHER_TOOL]
    )
    assert plain.input_tokens >= 400 // 3
    assert with_tools.input_tokens > plain.input_tokens


def test_models_listing_in_anthropic_shape(make_proxy: Any) -> None:
    proxy = make_proxy(model_aliases={"claude-sonnet-5": "qwen2.5-coder:7b"})
    client = sdk(proxy)
    ids = [model.id for model in client.models.list(limit=1000)]
    assert ids == ["claude-sonnet-5", "qwen2.5-coder:7b"]
    one = client.models.retrieve("claude-opus-5-5")
    assert one.id == "claude-opus-5-5" and one.type == "model"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("mistral:7b")


def test_message_start_and_ping_precede_prefill(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("late", first_chunk_delay=1.5))
    body = {
        "model": "claude-sonnet-5",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    started = time.monotonic()
    with httpx.stream(
        "POST", f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": API_KEY}
    ) as response:
        chunks = response.iter_bytes()
        first = next(chunks)
        waited = time.monotonic() - started
        rest = b"".join(chunks)
    assert waited < 1.0
    assert first.startswith(b"event: message_start\n")
    assert b"event: ping" in first + rest
    assert rest.rstrip().endswith(b'data: {"type":"message_stop"}')


def test_client_disconnect_cancels_upstream(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("start", hang=True))
    body = {
        "model": "claude-sonnet-5",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.stream(
        "POST", f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": API_KEY}
    ) as response:
        for chunk in response.iter_bytes():
            if b"content_block_delta" in chunk:
                break
    assert double.wait_for_disconnect(timeout=5.0), "the upstream stream was not closed"


def test_mid_stream_error_becomes_an_sse_error_event(
    proxy: LiveProxy, double: OllamaDouble
) -> None:
    double.script(Reply.stream_error("model runner crashed", after=2))
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        sdk(proxy).messages.stream(
            model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        stream.get_final_message()
    assert "model runner crashed" in str(caught.value)


def test_request_id_header_on_every_response(proxy: LiveProxy) -> None:
    for method, path in [("GET", "/health"), ("HEAD", "/"), ("GET", "/nope"), ("GET", "/metrics")]:
        response = httpx.request(method, proxy.url + path)
        assert response.headers["request-id"].startswith("req_")


def test_probes_answer_200(proxy: LiveProxy) -> None:
    assert httpx.head(proxy.url + "/").status_code == 200
    assert httpx.head(proxy.url + "/api/hello").status_code == 200


def test_health_reports_components(proxy: LiveProxy, double: OllamaDouble) -> None:
    body = httpx.get(proxy.url + "/health").json()
    assert body["status"] == "healthy"
    assert body["components"]["ollama"]["status"] == "ok"
    assert body["components"]["model"]["name"] == "qwen2.5-coder:7b"
    double.remove_model("qwen2.5-coder:7b")
    deep = httpx.get(proxy.url + "/health?deep=1", headers={"x-api-key": API_KEY})
    assert deep.json()["status"] == "degraded"  # checked now


def test_health_unhealthy_without_ollama(make_proxy: Any) -> None:
    proxy = make_proxy(ollama_url="http://127.0.0.1:9")
    response = httpx.get(proxy.url + "/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"


def test_metrics_count_requests_and_tokens(proxy: LiveProxy, double: OllamaDouble) -> None:
    double.script(Reply("hi", prompt_eval_count=11, eval_count=3))
    ask(proxy)
    text = httpx.get(proxy.url + "/metrics").text
    assert 'proxy_requests_total{path="/v1/messages",status="200"} 1' in text
    assert 'proxy_tokens_total{direction="input"} 11' in text
    assert 'proxy_tokens_total{direction="output"} 3' in text
    assert 'proxy_requested_tokens_total{class="sonnet",direction="input"} 11' in text
    assert 'proxy_requested_tokens_total{class="sonnet",direction="output"} 3' in text


def test_metrics_count_tokens_by_requested_model_class(
    proxy: LiveProxy, double: OllamaDouble
) -> None:
    double.script(Reply("a", prompt_eval_count=20, eval_count=5))
    ask(proxy, model="claude-haiku-4-5-20251001")
    double.script(Reply("b", prompt_eval_count=7, eval_count=2))
    ask(proxy, model="qwen2.5-coder:7b")
    text = httpx.get(proxy.url + "/metrics").text
    assert 'proxy_requested_tokens_total{class="haiku",direction="output"} 5' in text
    assert 'proxy_requested_tokens_total{class="other",direction="input"} 7' in text
    assert 'proxy_tokens_total{direction="input"} 27' in text


def test_beta_query_and_unknown_fields_accepted(proxy: LiveProxy, double: OllamaDouble) -> None:
    body = {
        "model": "claude-sonnet-5",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "hi",
                        "cache_control": {"type": "ephemeral", "ttl": "1h", "scope": "x"},
                    }
                ],
            }
        ],
        "metadata": {"user_id": "u"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "output_config": {"effort": "high"},
        "service_tier": "auto",
        "brand_new_field": {"anything": 1},
    }
    headers = {"x-api-key": API_KEY, "anthropic-beta": "made-up-2099-01-01,other"}
    response = httpx.post(f"{proxy.url}/v1/messages?beta=true", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert json.loads(response.text)["content"][0]["text"] == "ok"
