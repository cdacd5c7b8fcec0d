"""What an engine must prefill, turn by turn and per new session: Ollama's prompt vs ours.

`python -m bench.prompt_prefix` runs real Claude Code sessions (the pinned CLI; a Write, a Bash,
then an answer) through proxy_app against the Ollama double, and replays each turn's prompt
through the double's KV slot model (one slot, as OLLAMA_NUM_PARALLEL=1; Qwen's token ids) two
ways, on the same conversations:
- before: the prompt Ollama 0.32.7 builds from /api/chat (its qwen2.5-coder Go template, its
  `collate` moving every system message to the top, calls dropped from turns with text), as
  `proxy_app.engines.chat_template` reproduces it; the slot holds that prompt plus what the
  model wrote;
- after: the prompt proxy_app renders (Qwen's published template) and sends raw.
Prefill tokens are what the slot did not hold. A new session starts on the slot the first
session left warm: in the same project with other words, and in another project. Writes
bench/results/prompt_prefix.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from devkit.llama_server import running_llama_server
from devkit.ports import free_port
from ollama_double.qwen_template import render
from ollama_double.server import QWEN_SYSTEM, KvSlots, OllamaDouble, raw_prompt_ids
from proxy_app.config import Settings
from proxy_app.engines.chat_template import QWEN25_CODER
from proxy_app.families import QWEN25
from proxy_app.families import render as render_published
from tests.claude_code.session import MODEL, Turn, run_session
from tests.conftest import API_KEY, LiveProxy

RESULTS = Path(__file__).parent / "results"


def ollama_prompt(payload: dict[str, Any]) -> str:
    return render(
        QWEN25_CODER, payload["messages"], payload.get("tools") or [], default_system=QWEN_SYSTEM
    )


def prefills(prompts: list[str], answers: list[str]) -> list[int]:
    """Tokens prefilled for each prompt in turn, one slot carrying over."""
    slots = KvSlots()
    return [
        slots.serve(MODEL, raw_prompt_ids(MODEL, p), raw_prompt_ids(MODEL, a))
        for p, a in zip(prompts, answers, strict=True)
    ]


# Claude Code adds system messages mid-session (after compaction: the deferred-tools list).
LATE_SYSTEM = (
    "The following deferred tools are now available via ToolSearch: NotebookEdit, WebFetch"
)


def with_late_system_message(turns: list[Turn]) -> Turn:
    """A fourth turn (synthetic): the session's last, answered, then a system message and the
    user's next words, as Claude Code sends after a compaction."""
    last = turns[-1]
    messages = [
        *last.payload["messages"],
        {"role": "assistant", "content": last.answer},
        {"role": "system", "content": LATE_SYSTEM},
        {"role": "user", "content": "now list the files"},
    ]
    payload = {**last.payload, "messages": messages}
    tools = payload.get("tools") or []
    return Turn(render_published(QWEN25, messages, tools), "Done.", payload)


def compare(turns: list[Turn]) -> dict[str, list[int]]:
    answers = [turn.answer for turn in turns]
    before = [ollama_prompt(turn.payload) for turn in turns]
    after = [turn.prompt for turn in turns]
    return {
        "prompt_tokens_before": [len(raw_prompt_ids(MODEL, p)) for p in before],
        "prompt_tokens_after": [len(raw_prompt_ids(MODEL, p)) for p in after],
        "prefill_before": prefills(before, answers),
        "prefill_after": prefills(after, answers),
    }


def measure(*, real_engine: bool = False) -> dict[str, Any]:
    with OllamaDouble(models=[MODEL], default_num_ctx=32768) as double:
        settings = Settings(ollama_url=double.url, api_keys=[API_KEY], port=free_port())
        proxy = LiveProxy(settings).start()
        try:
            root = Path(tempfile.mkdtemp(prefix="bench-prefix-"))
            home = root / "home"
            home.mkdir()
            sessions = {}
            runs = (
                ("first", "alpha", "create hello.txt, then copy it to copy.txt"),
                ("same project", "alpha", "write hello.txt and make a copy named copy.txt"),
                ("other project", "beta", "create hello.txt, then copy it to copy.txt"),
            )
            for label, directory, ask in runs:
                work = root / directory
                work.mkdir(exist_ok=True)
                sessions[label] = run_session(proxy, double, API_KEY, work, home, ask)
        finally:
            proxy.stop()
    session = [*sessions["first"], with_late_system_message(sessions["first"])]
    turns = compare(session)
    new_sessions = {}
    for label in ("same project", "other project"):  # a warm slot holding the first session
        seq = sessions["first"][-1:] + sessions[label][:1]
        before = prefills([ollama_prompt(t.payload) for t in seq], [t.answer for t in seq])
        after = prefills([t.prompt for t in seq], [t.answer for t in seq])
        new_sessions[label] = {"prefill_before": before[1], "prefill_after": after[1]}
    results: dict[str, Any] = {"turns": turns, "new_sessions": new_sessions}
    if real_engine:
        results["engine"] = {
            "before": engine_replay([ollama_prompt(t.payload) + t.answer for t in session]),
            "after": engine_replay([t.prompt + t.answer for t in session]),
        }
    return results


def engine_replay(prompts: list[str]) -> list[dict[str, int]]:
    """Each prompt (with the answer the model wrote) sent in turn to a fresh llama-server
    (SmolLM2-135M, one slot, `cache_prompt`), nothing generated: the engine's own report of the
    tokens it evaluated and the tokens it took from its KV cache."""
    with running_llama_server() as server:
        out = []
        for prompt in prompts:
            body = {"prompt": prompt, "n_predict": 0, "cache_prompt": True}
            answer = httpx.post(f"{server.url}/completion", json=body, timeout=900).json()
            timings = answer["timings"]
            out.append({"evaluated": timings["prompt_n"], "cached": timings["cache_n"]})
        return out


def markdown(results: dict[str, Any]) -> str:
    t = results["turns"]
    lines = [
        "# Prefill per turn and per new session: Ollama's prompt (before) vs proxy_app's (after)",
        "",
        "A real Claude Code session (pinned CLI; Write, Bash, answer) through proxy_app; each",
        "prompt replayed through the double's one-slot KV model on Qwen's token ids",
        "(`python -m bench.prompt_prefix`). Turn 4 is synthetic: turn 3 answered, then a system",
        "message and the user's next words, as Claude Code sends after a compaction.",
        "",
        "| turn | prompt tokens before | prefilled before | prompt tokens after "
        "| prefilled after |",
        "|---|---|---|---|---|",
    ]
    for i, row in enumerate(
        zip(
            t["prompt_tokens_before"],
            t["prefill_before"],
            t["prompt_tokens_after"],
            t["prefill_after"],
            strict=True,
        )
    ):
        lines.append(f"| {i + 1} | {row[0]:,} | {row[1]:,} | {row[2]:,} | {row[3]:,} |")
    lines += [
        "",
        "| new session on a warm slot | prefilled before | prefilled after |",
        "|---|---|---|",
    ]
    for label, row in results["new_sessions"].items():
        lines.append(f"| {label} | {row['prefill_before']:,} | {row['prefill_after']:,} |")
    engine = results.get("engine")
    if engine:
        lines += [
            "",
            "The same prompts (each with the answer the model wrote) on a real engine: llama.cpp's",
            "`llama-server` with SmolLM2-135M (its own vocabulary), one slot, `cache_prompt`;",
            "its own `timings` (`--real-engine`).",
            "",
            "| turn | evaluated before | from KV cache before | evaluated after "
            "| from KV cache after |",
            "|---|---|---|---|---|",
        ]
        for i, (b, a) in enumerate(zip(engine["before"], engine["after"], strict=True)):
            lines.append(
                f"| {i + 1} | {b['evaluated']:,} | {b['cached']:,} | {a['evaluated']:,} "
                f"| {a['cached']:,} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prompt_prefix", description=__doc__)
    parser.add_argument(
        "--real-engine",
        action="store_true",
        help="also replay the prompts on llama-server (built once by devkit.llamacpp)",
    )
    results = measure(real_engine=parser.parse_args().real_engine)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prompt_prefix.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "prompt_prefix.md").write_text(markdown(results))
    sys.stdout.write(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
