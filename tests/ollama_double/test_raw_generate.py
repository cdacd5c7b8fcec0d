"""The double's raw /api/generate: a prompt its client rendered, answered as a model writes.

Ollama's GenerateHandler with `raw: true` applies no template, SYSTEM or built-in parser
(server/routes.go: `!req.Raw`), returns the model's text in `response` and no `context`; these
tests hold the double to that shape, and to the model's own format for tool calls.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ollama_double.server import ERR_CONTEXT, KvSlots, OllamaDouble, Reply, raw_prompt_ids
from tests.ollama_double.test_double import request

QWEN, QWEN3 = "qwen2.5-coder:7b", "qwen3-coder:30b"
PROMPT = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
CALL = {"name": "Write", "arguments": {"file_path": "/tmp/a", "content": "x\n", "n": 2}}


@pytest.fixture
def od():
    with OllamaDouble(models=[QWEN, QWEN3]) as double:
        yield double


def generate(double: OllamaDouble, **body: Any) -> tuple[int, list[dict[str, Any]]]:
    body = {"model": QWEN, "prompt": PROMPT, "raw": True, **body}
    status, _, data = request(double, "POST", "/api/generate", body)
    return status, [json.loads(line) for line in data.splitlines() if line.strip()]


def test_streamed_text_and_final_chunk(od: OllamaDouble) -> None:
    od.script(Reply("Hello there friend"))
    status, chunks = generate(od)
    assert status == 200
    assert "".join(c["response"] for c in chunks) == "Hello there friend"
    final = chunks[-1]
    assert final["done"] is True and final["done_reason"] == "stop" and final["response"] == ""
    assert "context" not in final and "message" not in final
    assert final["prompt_eval_count"] == len(raw_prompt_ids(QWEN, PROMPT))
    assert all(c["done"] is False and "message" not in c for c in chunks[:-1])
    assert od.chat_requests[-1]["prompt"] == PROMPT


def test_tool_calls_come_back_in_the_models_own_format(od: OllamaDouble) -> None:
    od.script(Reply("I'll write it.", tool_calls=[CALL]))
    _, with_text = generate(od, stream=False)
    assert with_text[0]["response"] == (
        "I'll write it.\n<tool_call>\n"
        '{"name": "Write", "arguments": {"file_path": "/tmp/a", "content": "x\\n", "n": 2}}'
        "\n</tool_call>"
    )
    od.script(Reply("Writing.", tool_calls=[CALL]))
    _, chunks = generate(od, model=QWEN3)
    assert "".join(c["response"] for c in chunks) == (
        "Writing.\n\n<tool_call>\n<function=Write>\n<parameter=file_path>\n/tmp/a\n</parameter>\n"
        "<parameter=content>\nx\n\n</parameter>\n<parameter=n>\n2\n</parameter>\n"
        "</function>\n</tool_call>"
    )
    od.script(Reply("", tool_calls=[CALL]))
    _, only_call = generate(od, stream=False)
    assert only_call[0]["response"].startswith("<tool_call>\n{")


def test_window_and_length_limits(od: OllamaDouble) -> None:
    long_prompt = PROMPT * 200
    status, body = generate(od, prompt=long_prompt, truncate=False, options={"num_ctx": 512})
    assert (status, body) == (400, [{"error": ERR_CONTEXT}])
    od.script(Reply("word " * 50))
    _, chunks = generate(od, options={"num_predict": 5})
    assert chunks[-1]["done_reason"] == "length"


def test_kv_slot_reuses_the_previous_prompt_and_answer(od: OllamaDouble) -> None:
    od.kv = KvSlots()
    od.script(Reply("first answer"), Reply("second"))
    generate(od)
    generate(od, prompt=PROMPT + "first answer<|im_end|>\n<|im_start|>user\nmore<|im_end|>\n")
    first, second = od.kv.log
    assert first[2] == first[1]  # a cold slot prefills everything
    reused = len(raw_prompt_ids(QWEN, PROMPT)) + len(raw_prompt_ids(QWEN, "first answer"))
    assert second[2] == second[1] - reused
