"""Benchmark (simulation): prefill a Claude Code session saves when background calls run on
a second, small model instead of evicting the main model's KV cache.

Usage: .venv/bin/python bench/background_slots.py [--turns 10] [--rate 4600]
One run, three set-ups, the same session: Claude Code's captured first request, then `turns`
tool-loop turns (a Bash call and a ~2 KB result each), with a Haiku-class background call (a
title request) after every turn. The double's slot model (ollama_double.server.KvSlots) decides
what each request prefills, token for token (Qwen's vocabulary over the prompt Ollama renders):
  background-on-small  haiku ids -> qwen2.5-coder:1.5b; 1 slot per model, 2 models loaded
  all-on-main          everything on qwen2.5-coder:7b, 1 slot (OLLAMA_NUM_PARALLEL=1)
  all-on-main-2-slots  everything on qwen2.5-coder:7b, 2 slots (twice the KV-cache memory)
Seconds use `rate` prefill tokens/s for the 7B model: 4,600 is a llama.cpp figure for an 8B
Q6 model on an RTX 4090 (dmatora/LLM-inference-speed-benchmarks#10); measure yours from
prompt_eval_count / prompt_eval_duration of a cold request.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit.background import MAIN, SMALL, TITLE  # noqa: E402
from ollama_double.server import KvSlots, prompt_token_ids  # noqa: E402
from proxy_app.api.anthropic import MessagesRequest  # noqa: E402
from proxy_app.translate import to_ollama_request  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "claude_code" / "first_request.json"
RESULT = "src/app/module_{i}.py: 120 lines, last changed by the build at step {i}\n" * 28


def payload(body: dict[str, Any], model: str) -> dict[str, Any]:
    request = MessagesRequest.model_validate(body)
    upstream = to_ollama_request(request, model=model, num_ctx=32768, keep_alive="30m", think=False)
    return upstream.payload


def session(turns: int) -> list[dict[str, Any]]:
    """The requests of one session, in order: main turns with a background call after each."""
    body = json.loads(FIXTURE.read_text())
    requests = []
    for i in range(turns + 1):
        requests += [body, TITLE]
        call = {
            "type": "tool_use",
            "id": f"toolu_{i:04d}",
            "name": "Bash",
            "input": {"command": f"ls src/app  # step {i}"},
        }
        result = {"type": "tool_result", "tool_use_id": call["id"], "content": RESULT.format(i=i)}
        body = {
            **body,
            "messages": [
                *body["messages"],
                {"role": "assistant", "content": [call]},
                {"role": "user", "content": [result]},
            ],
        }
    return requests


def run(requests: list[dict[str, Any]], background: str, slots: int) -> KvSlots:
    kv = KvSlots(slots_per_model=slots, max_loaded=2)
    for body in requests:
        model = background if "haiku" in body["model"] else MAIN
        sent = payload(body, model)
        kv.serve(model, prompt_token_ids(model, sent["messages"], sent.get("tools")), [])
    return kv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--rate", type=float, default=4600.0, help="7B prefill tokens/s")
    args = parser.parse_args()
    requests = session(args.turns)
    setups = {
        "background-on-small": run(requests, SMALL, 1),
        "all-on-main": run(requests, MAIN, 1),
        "all-on-main-2-slots": run(requests, MAIN, 2),
    }
    main_turns = args.turns + 1
    for name, kv in setups.items():
        print(
            f"{name}: {main_turns} main turns + {main_turns} background calls; main model "
            f"prefilled {kv.prefilled[MAIN]} tokens ({kv.prefilled[MAIN] / args.rate:.1f} s "
            f"at {args.rate:.0f} tok/s), reused {kv.reused[MAIN]}; small model prefilled "
            f"{kv.prefilled[SMALL]}"
        )
    saved = setups["all-on-main"].prefilled[MAIN] - setups["background-on-small"].prefilled[MAIN]
    print(
        f"background calls on {SMALL} save {saved} prefill tokens on {MAIN} per session of "
        f"{main_turns} turns: {saved / args.rate:.1f} s ({saved / args.rate / main_turns:.2f} s "
        "per turn)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
