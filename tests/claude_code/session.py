"""A multi-turn Claude Code tool session through proxy_app, as the model's engine sees it.

The pinned CLI asks to write a file, then to copy it with Bash, then finishes; the Ollama
double answers each turn (tool calls written in the model's own format) and records the raw
prompts proxy_app sent. Shared by tests/integration/test_prompt_prefix.py and
bench/prompt_prefix.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ollama_double.server import OllamaDouble, Reply, native_answer
from tests.claude_code.cli import run_claude

MODEL = "qwen2.5-coder:7b"


@dataclass
class Turn:
    """One model call of the session: the prompt sent, the answer the model wrote, and the
    conversation proxy_app translated (its /api/chat shape, for comparisons)."""

    prompt: str
    answer: str
    payload: dict[str, Any]


def replies(work: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """(text, tool calls) of each turn the model answers."""
    target, copy = work / "hello.txt", work / "copy.txt"
    write = {"name": "Write", "arguments": {"file_path": str(target), "content": "hello\n"}}
    bash = {"name": "Bash", "arguments": {"command": f"cp {target} {copy}"}}
    return [
        ("I'll create the file.", [write]),
        ("Now I'll copy it.", [bash]),
        ("Created hello.txt and copied it to copy.txt.", []),
    ]


ASK = "create hello.txt, then copy it to copy.txt"


def run_session(
    proxy: Any,
    double: OllamaDouble,
    api_key: str,
    work: Path,
    home: Path | None = None,
    ask: str = ASK,
) -> list[Turn]:
    """Run the session in `work` (as the user whose HOME is `home`, default a fresh one),
    opening with the user's words `ask`; every model call of it, in order."""
    payloads: list[dict[str, Any]] = []
    real_measure = proxy.services.counter.measure

    def spy(model: str, profile: Any, payload: dict[str, Any]) -> Any:
        if "num_predict" in payload["options"]:  # a /v1/messages call, not count_tokens
            payloads.append(payload)
        return real_measure(model, profile, payload)

    proxy.services.counter.measure = spy
    answers = replies(work)
    double.script(*(Reply(text, tool_calls=calls or None) for text, calls in answers))
    first = len(double.chat_requests)
    try:
        done = run_claude(
            ask,
            proxy.url,
            api_key,
            str(work),
            extra_env={"ANTHROPIC_MODEL": MODEL, **({"HOME": str(home)} if home else {})},
        )
    finally:
        proxy.services.counter.measure = real_measure
    if done.returncode != 0:
        raise AssertionError(done.stdout + done.stderr)
    prompts = [body["prompt"] for body in double.chat_requests[first:]]
    texts = [native_answer(MODEL, text, calls) for text, calls in answers]
    return [
        Turn(p, a, c) for p, a, c in zip(prompts, texts, payloads[-len(prompts) :], strict=True)
    ]
