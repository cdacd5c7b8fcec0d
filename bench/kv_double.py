"""The Ollama API double with a KV-cache cost model, for the affinity-vs-round-robin simulation.

One request at a time per host (``num_parallel=1``) and ``cache_entries`` cached prompts (1 by
default: one slot, as OLLAMA_NUM_PARALLEL=1, keeping the prompt it processed last). A request
pays prefill time only for the part of its prompt after the longest prefix it shares with a
cached prompt (Ollama/llama.cpp reuse the common token prefix of a slot), plus decode time for
its answer. With more entries, a request that extends a cached prompt replaces it; any other
takes a free entry, or the least recently used one. All sleeps are multiplied by
``time_scale`` so the bench stays short; the reported seconds are simulated seconds (GPU time
at the rates below).

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

    def __init__(self, time_scale: float, cache_entries: int = 1, **kwargs: Any) -> None:
        super().__init__(num_parallel=1, **kwargs)
        self.time_scale = time_scale
        self.cache_entries = cache_entries
        self._request_body = threading.local()
        self.reset_kv()

    def reset_kv(self) -> None:
        """Empty the slot and zero the counters (between simulated runs)."""
        with self._lock:
            self.cached: list[str] = []  # least recently used first
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
            reused = self._use_cache(prompt)
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

    def _use_cache(self, prompt: str) -> int:
        """The prefix length reused from the cache, which now holds ``prompt`` (lock held)."""
        shares = [shared_prefix(prompt, entry) for entry in self.cached]
        best = max(range(len(shares)), key=shares.__getitem__, default=None)
        reused = shares[best] if best is not None else 0
        extends = best is not None and shares[best] == len(self.cached[best])
        if extends or (self.cached and len(self.cached) >= self.cache_entries):
            self.cached.pop(best if extends or self.cache_entries == 1 else 0)
        self.cached.append(prompt)
        return reused
