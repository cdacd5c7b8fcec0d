"""What the model's engine can reuse: the real Claude Code CLI through proxy_app.

Each turn's prompt begins with the previous turn's prompt and the answer the model wrote, so an
engine's KV cache prefills only the new part (measured here with the double's slot model, on
Qwen's token ids); and the part every session shares (Claude Code's system prompt and its tool
definitions) comes before anything session-specific, such as the working directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ollama_double.server import KvSlots, OllamaDouble, raw_prompt_ids
from tests.claude_code.session import MODEL, run_session
from tests.conftest import API_KEY, LiveProxy

pytestmark = pytest.mark.claude_code


def test_each_turn_extends_the_last_so_only_new_tokens_are_prefilled(
    proxy: LiveProxy, double: OllamaDouble, tmp_path: Path
) -> None:
    double.kv = KvSlots()
    turns = run_session(proxy, double, API_KEY, tmp_path)
    assert (tmp_path / "copy.txt").read_text() == "hello\n"
    assert len(turns) == 3
    for before, after in zip(turns, turns[1:], strict=False):
        assert after.prompt.startswith(before.prompt + before.answer)
    ids = [raw_prompt_ids(MODEL, turn.prompt) for turn in turns]
    answers = [raw_prompt_ids(MODEL, turn.answer) for turn in turns]
    prefilled = [entry[2] for entry in double.kv.log if entry[0] == MODEL][-3:]
    assert prefilled[0] == len(ids[0])  # a cold slot
    for n in (1, 2):  # the previous prompt and its answer are reused, token for token
        assert ids[n][: len(ids[n - 1]) + len(answers[n - 1])] == ids[n - 1] + answers[n - 1]
        assert prefilled[n] == len(ids[n]) - len(ids[n - 1]) - len(answers[n - 1])


def first_prompts(proxy: LiveProxy, double: OllamaDouble, tmp_path: Path, *dirs: str) -> list[str]:
    """The first prompt of a session in each directory, one user (one HOME) for all."""
    home = tmp_path / "home"
    home.mkdir()
    prompts = []
    for name in dirs:
        work = tmp_path / name
        work.mkdir(exist_ok=True)
        prompts.append(run_session(proxy, double, API_KEY, work, home)[0].prompt)
    return prompts


def shared_chars(a: str, b: str) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def test_a_new_session_reuses_the_system_prompt_and_every_tool(
    proxy: LiveProxy, double: OllamaDouble, tmp_path: Path
) -> None:
    """A second session in the same project (a new `claude`, or /clear): everything before the
    user's first words is the same — Claude Code's system prompt and all its tool definitions,
    ~11k tokens — and its environment message (directory, date, git status) stays after them,
    where Claude Code put it (Ollama moves it above the tools, ollama#18431)."""
    first, second = first_prompts(proxy, double, tmp_path, "project", "project")
    first_user = first.index("<|im_start|>user\n")
    assert "</tools>" in first[:first_user]
    assert shared_chars(first, second) > first_user
    environment = first.index(str(tmp_path / "project"), first.index("</tools>"))
    assert environment > first_user


def test_sessions_in_other_projects_share_what_claude_code_shares(
    proxy: LiveProxy, double: OllamaDouble, tmp_path: Path
) -> None:
    """Claude Code's own system prompt names the project's memory directory, so two projects
    share the system prompt up to that line, and nothing of them differs before it."""
    alpha, beta = first_prompts(proxy, double, tmp_path, "alpha-project", "beta-project")
    shared = shared_chars(alpha, beta)
    assert shared == alpha.index("alpha-project/memory/")
