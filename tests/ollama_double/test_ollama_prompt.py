"""The prompt Ollama builds for /api/chat, as the Ollama double reproduces it (qwen2.5-coder's Go
template, qwen3-coder's built-in renderer).

The expected strings were produced by Ollama's own template code and types (template.Execute,
collate, templateTool…, re-declared in devkit/ollama_render/main.go) run by Go's text/template
on the same /api/chat bodies; the captured Claude Code requests match it byte for byte too.
"""

from __future__ import annotations

from typing import Any

import pytest

from ollama_double.qwen3coder_renderer import INSTRUCTIONS, Qwen3CoderRenderer
from ollama_double.qwen_template import render
from proxy_app.engines.chat_template import QWEN25, QWEN25_CODER, match_template

BODY: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "List files"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "function": {
                        "name": "Bash",
                        "arguments": {"timeout": 5000, "command": "ls <dir> && pwd"},
                    }
                }
            ],
        },
        {"role": "tool", "content": "a.txt", "tool_name": "Bash"},
        {"role": "system", "content": "<reminder>"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "Bash",
                "description": "Run a <shell> command",
                "parameters": {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "properties": {
                        "timeout": {"type": "number", "description": "ms", "minimum": 0},
                        "command": {"type": "string", "description": "The command"},
                    },
                    "required": ["command"],
                    "additionalProperties": False,
                },
            },
        }
    ],
}

EXPECTED_CODER = (
    "<|im_start|>system\nBe brief.\n\n<reminder>\n\n# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools>:\n<tools>\n"
    '{"type": "function", "function": {Bash Run a <shell> command {object <nil> <nil> [command] '
    '{"command":{"type":"string","description":"The command"},'
    '"timeout":{"type":"number","description":"ms"}}}}}\n</tools>\n\n'
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> with NO other text. Do not include any backticks or ```json.\n"
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call><|im_end|>\n<|im_start|>user\nList files<|im_end|>\n<|im_start|>assistant\n"
    '<tool_call>\n{"name": "Bash", "arguments": '
    '{"command":"ls \\u003cdir\\u003e \\u0026\\u0026 pwd","timeout":5000}}\n'
    "</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\na.txt\n</tool_response>"
    "<|im_end|>\n<|im_start|>assistant\n"
)


def test_qwen25_coder_prompt_matches_ollamas_rendering() -> None:
    """System turns anywhere join the top system prompt (ollama#18431); the tool schema is
    fmt's struct syntax (ollama#14601) with unknown JSON-schema keys dropped and properties
    sorted; arguments are Go JSON (sorted keys, HTML-escaped)."""
    assert render(QWEN25_CODER, BODY["messages"], BODY["tools"]) == EXPECTED_CODER


def test_qwen25_template_differs_only_in_its_tool_sentences() -> None:
    coder = EXPECTED_CODER
    plain = render(QWEN25, BODY["messages"], BODY["tools"])
    assert plain == coder.replace("<tools></tools>:", "<tools></tools> XML tags:").replace(
        "<tool_call></tool_call> with NO other text. Do not include any backticks or ```json.",
        "<tool_call></tool_call> XML tags:",
    )


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (  # the model's SYSTEM when the request has none; the generation prompt after a user
            [{"role": "user", "content": "hi"}],
            "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\n",
        ),
        (  # a final assistant turn is a prefill: left open
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\na<|im_end|>\n"
            "<|im_start|>assistant\nb",
        ),
        (  # consecutive user turns merge; an assistant turn with text drops its tool calls
            [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b", "images": ["AAAA"]},
                {
                    "role": "assistant",
                    "content": "done",
                    "tool_calls": [{"function": {"name": "X", "arguments": {}}}],
                },
                {"role": "user", "content": "c"},
            ],
            "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\na\n\n[img-0]b"
            "<|im_end|>\n<|im_start|>assistant\ndone<|im_end|>\n<|im_start|>user\nc<|im_end|>\n"
            "<|im_start|>assistant\n",
        ),
    ],
    ids=["default-system", "prefill", "merged-turns"],
)
def test_turns(messages: list[dict[str, Any]], expected: str) -> None:
    assert render(QWEN25_CODER, messages, default_system="You are Qwen.") == expected


def test_known_templates_are_recognised_and_others_are_not() -> None:
    assert match_template(QWEN25_CODER.source() + "\n") is QWEN25_CODER
    assert match_template(QWEN25.source()) is QWEN25
    assert match_template(QWEN25_CODER.source().replace("NO other text", "no other text")) is None
    assert match_template("{{ .Prompt }}") is None


EXPECTED_QWEN3_CODER = (
    "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou have access to the following functions:"
    "\n\n<tools>\n<function>\n<name>Bash</name>\n<description>Run a <shell> command"
    "</description>\n<parameters>\n<parameter>\n<name>timeout</name>\n<type>number</type>\n"
    "<description>ms</description>\n</parameter>\n<parameter>\n<name>command</name>\n"
    "<type>string</type>\n<description>The command</description>\n</parameter>\n"
    '<required>["command"]</required>\n</parameters>\n</function>\n</tools>'
    + INSTRUCTIONS
    + "<|im_end|>\n<|im_start|>user\nList files<|im_end|>\n<|im_start|>assistant\n\n"
    "<tool_call>\n<function=Bash>\n<parameter=timeout>\n5000\n</parameter>\n"
    "<parameter=command>\nls <dir> && pwd\n</parameter>\n</function>\n</tool_call><|im_end|>\n"
    "<|im_start|>user\n<tool_response>\na.txt\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n"
)


def test_qwen3_coder_prompt_matches_ollamas_renderer() -> None:
    """Ollama's built-in qwen3-coder renderer: only the first system message survives (the
    `<reminder>` is dropped), XML tools in the request's order, arguments as raw values."""
    renderer = Qwen3CoderRenderer()
    head, pieces = renderer.around_tools(BODY["messages"], has_tools=True)
    assert head + renderer.tools(BODY["tools"]) + "".join(pieces) == EXPECTED_QWEN3_CODER


def test_qwen3_coder_groups_consecutive_tool_results_in_one_user_turn() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "tool", "content": "one"},
        {"role": "tool", "content": "two"},
    ]
    head, pieces = Qwen3CoderRenderer().around_tools(messages, has_tools=False)
    assert head + "".join(pieces) == (
        "<|im_start|>user\ngo<|im_end|>\n<|im_start|>user\n<tool_response>\none\n"
        "</tool_response>\n<tool_response>\ntwo\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
