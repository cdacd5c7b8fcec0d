"""The Ollama API double with a KV-cache cost model, for the affinity-vs-round-robin simulation.

One slot per host (``num_parallel=1``, as OLLAMA_NUM_PARALLEL=1): the slot keeps the prompt it
processed last. A request pays prefill time only for the part of its prompt after the longest
prefix it shares with that cached prompt (Ollama/llama.cpp reuse the common token prefix of the
slot), plus decode time for its answer. All sleeps are multiplied by ``time_scale`` so the bench
stays short; the reported seconds are simulated seconds (GPU time at the rates below).

Rates: an RTX 4090 with a 7B Q4 model, from published llama.cpp / 4-bit runs:
- prefill 7,980 tokens/s — llama-bench `pp 512`, llama 7B Q4_0, RTX 4090, CUDA
  (ggml-org/llama.cpp pull request #4766, ggerganov's comment of 2024-01-10). Prefill at 16k+
  tokens of context is slower than at 512, so the gap measured here is a lower bound.
- decode 152.6 tokens/s — Llama-2-7B 4-bit (Exllama) on an RTX 4090
  (mlc-ai/llm-perf-bench pull request #1, 2023-08-05; MLC LLM measured 191).
The prompt is what Ollama's qwen2.5 template renders first to last: the system message, the
tool schemas, then the other messages; its length in tokens is characters / 3 (the double's rule).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ollama_double.server import OllamaDouble, RecordedRequest, Reply

PREFILL_TOKENS_PER_S = 7980.0
DECODE_TOKENS_PER_S = 152.6
CHARS_PER_TOKEN = 3
# A Claude Code turn's answer: a tool call with its arguments and a sentence (~150 tokens).
ANSWER_TOKENS = 150
ANSWER = "I will read the next file and then continue with the change you asked for."


def rendered_prompt(body: dict[str, Any]) -> str:
    """The prompt text in the order the model reads it: system, tools, the other messages."""
    messages = list(body.get("messages") or [])
    head = [messages.pop(0)] if messages and messages[0].get("role") == "system" else []
    dump = json.dumps
    return dump(head) + dump(body.get("tools") or []) + dump(messages)


def shared_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` (binary search on slices)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class KVCacheDouble(OllamaDouble):
    """OllamaDouble whose /api/chat takes the time a one-slot GPU host with a KV cache would."""

    def __init__(self, time_scale: float, **kwargs: Any) -> None:
        super().__init__(num_parallel=1, **kwargs)
        self.time_scale = time_scale
        self._request_body = threading.local()
        self.reset_kv()

    def reset_kv(self) -> None:
        """Empty the slot and zero the counters (between simulated runs)."""
        with self._lock:
            self.slot_prompt = ""
            self.prompt_tokens = 0
            self.prefill_tokens = 0
            self.prefill_seconds = 0.0
            self.decode_seconds = 0.0
            self.chats = 0

    # The double records each request in its handler thread just before dispatching it, and
    # picks the reply once the request holds the slot: the two hooks below see both moments.
    def _record(self, req: RecordedRequest) -> None:
        if req.path == "/api/chat" and isinstance(req.body, dict):
            self._request_body.value = req.body

    def _next_reply(self) -> Reply:
        prompt = rendered_prompt(getattr(self._request_body, "value", {}))
        with self._lock:
            reused = shared_prefix(prompt, self.slot_prompt)
            self.slot_prompt = prompt
            new_tokens = (len(prompt) - reused) // CHARS_PER_TOKEN
            prefill = new_tokens / PREFILL_TOKENS_PER_S
            decode = ANSWER_TOKENS / DECODE_TOKENS_PER_S
            self.prompt_tokens += len(prompt) // CHARS_PER_TOKEN
            self.prefill_tokens += new_tokens
            self.prefill_seconds += prefill
            self.decode_seconds += decode
            self.chats += 1
        pieces = len(ANSWER.split())
        return Reply(ANSWER, first_chunk_delay=prefill * self.time_scale,
                     chunk_delay=decode * self.time_scale / pieces,
                     prompt_eval_count=len(prompt) // CHARS_PER_TOKEN, eval_count=ANSWER_TOKENS)
