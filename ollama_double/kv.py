"""The Ollama API test double's model of Ollama's KV cache slots (not Ollama's code).

It must stay valid on Python 3.10 and 3.11 with only the standard library, without
``from __future__`` or relative imports outside its marked import block: ``archive.py``
concatenates the double's modules into the single-file stand-in ``bin/ollama``.
"""

import collections

# --- double-import-begin (stripped when building the single-file bin/ollama)
from .scripting import RecordedRequest

# --- double-import-end

# --------------------------------------------------------------------------- server


class KvSlots:
    """The double's model of Ollama's KV cache (not Ollama): each loaded model has
    ``slots_per_model`` slots (OLLAMA_NUM_PARALLEL), each holding the tokens of the last prompt
    it served plus the answer; at most ``max_loaded`` models stay loaded (OLLAMA_MAX_LOADED_MODELS),
    loading another evicts the least recently used with its slots. A request takes the slot whose
    cached prefix covers at least ``similarity`` of its prompt (the best one), else the least
    recently used slot (llama-server's choice, --slot-prompt-similarity 0.1), and prefills only
    what that slot does not hold. llama-server's host-RAM prompt cache (--cache-ram) is not
    modelled: it can restore an evicted prefix faster than a prefill."""

    def __init__(self, slots_per_model: int = 1, max_loaded: int | None = None,
                 similarity: float = 0.1) -> None:
        self.slots_per_model = slots_per_model
        self.max_loaded = max_loaded
        self.similarity = similarity
        self.models: collections.OrderedDict[str, list[list[int]]] = collections.OrderedDict()
        self.used: dict[str, list[int]] = {}  # per model: when each slot was last used
        self.prefilled: collections.Counter[str] = collections.Counter()
        self.reused: collections.Counter[str] = collections.Counter()
        self.evictions = 0
        self.log: list[tuple[str, int, int]] = []  # (model, prompt tokens, prefilled)

    def serve(self, model: str, prompt: list[int], answer: list[int]) -> int:
        """Tokens of ``prompt`` the model must prefill; the chosen slot then holds both."""
        if model in self.models:
            self.models.move_to_end(model)
        else:
            if self.max_loaded is not None and len(self.models) >= self.max_loaded:
                evicted, _ = self.models.popitem(last=False)
                self.used.pop(evicted, None)
                self.evictions += 1
            self.models[model] = [[] for _ in range(max(1, self.slots_per_model))]
            self.used[model] = [0] * max(1, self.slots_per_model)
        slots, used = self.models[model], self.used[model]
        shared = [_common_prefix(slot, prompt) for slot in slots]
        best = shared.index(max(shared))
        if not prompt or shared[best] / len(prompt) <= self.similarity:
            best = used.index(min(used))  # no slot is similar enough: the least recently used
        prefill = len(prompt) - shared[best]
        slots[best] = prompt + answer
        used[best] = len(self.log) + 1
        self.prefilled[model] += prefill
        self.reused[model] += shared[best]
        self.log.append((model, len(prompt), prefill))
        return prefill


def _is_generation(request: RecordedRequest) -> bool:
    body = request.body if isinstance(request.body, dict) else {}
    return request.path == "/api/chat" or (
        request.path == "/api/generate" and bool(body.get("raw")) and bool(body.get("prompt"))
    )


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
