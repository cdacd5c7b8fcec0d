"""What the models need in GPU memory, and tested model combinations per GPU memory class.

Need of one loaded model = weights + KV cache + OVERHEAD_GB, where the KV cache is
`kv_bytes_per_token × context × parallel slots` (Ollama gives llama-server `-c num_ctx × -np`).
Figures (the table lives in roles/ollama/figures.py; `make up` uses it too, to pick offers):
- weights: the Q4_K_M download sizes of the Ollama library tags (ollama.com/library/
  qwen2.5-coder: 1.5b 986 MB, 3b 1.9 GB, 7b 4.7 GB, 14b 9.0 GB, 32b 20 GB;
  qwen3-coder:30b 19 GB);
- KV cache per token at f16 (OLLAMA_KV_CACHE_TYPE's default): 2 (K and V) × layers ×
  KV heads × head size 128 × 2 bytes, from each model's config.json (Qwen2.5-Coder-1.5B: 28
  layers, 2 KV heads; 3B: 36, 2; 7B: 28, 4; 14B: 48, 8; 32B: 64, 8; Qwen3-Coder-30B-A3B: 48, 4);
- OVERHEAD_GB: CUDA context and compute buffers per loaded model, an allowance (not measured).
These are computed fits, not measurements on each GPU: check `ollama ps` (SIZE, PROCESSOR
100% GPU) after a deploy.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy_app.engines.ollama import canonical_name

# One table of figures for the deploy's check and `make up`'s offer filter (fleet/vram.py).
from roles.ollama.figures import KNOWN, OVERHEAD_GB


@dataclass(frozen=True)
class Profile:
    """A combination for a GPU memory class: Ollama role data plus proxy_app's background model."""

    vram_gb: int
    main: str
    background: str
    context: int
    parallel: int

    def need_gb(self) -> float:
        models = [self.main, self.background] if self.background else [self.main]
        return sum(need_gb(m, self.context, self.parallel if m == self.main else 1) or 0.0
                   for m in models)  # fmt: skip


PROFILES = (
    Profile(8, "qwen2.5-coder:7b", "", 16384, 1),
    Profile(12, "qwen2.5-coder:7b", "qwen2.5-coder:1.5b", 32768, 1),
    Profile(16, "qwen2.5-coder:7b", "qwen2.5-coder:1.5b", 32768, 2),
    Profile(24, "qwen2.5-coder:14b", "qwen2.5-coder:1.5b", 32768, 1),
    Profile(48, "qwen3-coder:30b", "qwen2.5-coder:1.5b", 65536, 2),
)


def need_gb(model: str, context: int, parallel: int) -> float | None:
    """GPU memory one loaded model needs, or None for a model without figures here."""
    spec = KNOWN.get(canonical_name(model))
    if spec is None:
        return None
    weights_gb, kv_bytes_per_token = spec
    return weights_gb + kv_bytes_per_token * context * parallel / 1e9 + OVERHEAD_GB


def fit_problem(
    models: list[str], context: int, parallel: int, max_loaded: int, vram_mib: int
) -> str | None:
    """A sentence saying why these models cannot stay loaded together in `vram_mib`, or None.

    The first `max_loaded` models are the ones Ollama keeps loaded at once (the first, the main
    model, with `parallel` slots; the others with one each, as proxy_app's background calls).
    """
    loaded = models[:max_loaded]
    parts = []
    total = 0.0
    for i, model in enumerate(loaded):
        need = need_gb(model, context, parallel if i == 0 else 1)
        if need is None:
            return None  # no figures for it: nothing to compare with
        total += need
        parts.append(f"{model} {need:.1f} GB")
    vram_gb = vram_mib * 1024 * 1024 / 1e9
    if total <= vram_gb:
        return None
    fitting = [p for p in PROFILES if p.vram_gb * 1024**3 / 1e9 <= vram_gb + 0.5]
    hint = (
        f"the {fitting[-1].vram_gb} GB profile ({fitting[-1].main} with "
        f"{fitting[-1].background or 'no background model'}, {fitting[-1].context} tokens, "
        f"{fitting[-1].parallel} slot(s))"
        if fitting
        else "a smaller model"
    )
    return (
        f"{' + '.join(parts)} (at {context} tokens, {parallel} slot(s) for the first) need "
        f"{total:.1f} GB of GPU memory together, but this GPU has {vram_gb:.1f} GB; use {hint} "
        "from roles/ollama/profiles.py, or lower ollama_context_length or ollama_num_parallel."
    )
