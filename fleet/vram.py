"""How much GPU memory the configured Ollama models need, to filter vast.ai offers by VRAM.

Every model in `ollama_models` may be loaded at once (OLLAMA_KEEP_ALIVE keeps them), each with
its context window's KV cache, so the need is the sum of: weights + KV cache at
`ollama_context_length` tokens + a fixed runtime overhead (CUDA context, compute graph).

    required_gb(["qwen2.5-coder:7b"], 32768) -> 7.6   # 4.7 + 1.9 + 1.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fleet.errors import FleetError
from roles.ollama.figures import KNOWN, OVERHEAD_GB

# Unknown `name:<N>b` models: Q4_K_M weighs about 0.65 GB per billion parameters; KV cache
# about 8 KiB per token per billion (qwen2.5-coder:7b: 56 KiB).
GB_PER_BILLION = 0.65
KV_BYTES_PER_BILLION = 8 * 1024
_SIZE = re.compile(r":(?:.*-)?(\d+(?:\.\d+)?)b(?:-|$)")


def model_gb(model: str, context: int) -> float:
    """GB one model needs loaded with a `context`-token window."""
    name = model if ":" in model else f"{model}:latest"
    if name in KNOWN:
        weights, kv_per_token = KNOWN[name]
    else:
        size = _SIZE.search(name)
        if size is None:
            raise FleetError(
                f"Cannot tell how much VRAM the model {model} needs (not in"
                " roles/ollama/figures.py and no size such as `:7b` in its name); pass the need"
                " yourself with"
                " VRAM=<GB> (make) or --min-vram <GB>."
            )
        billions = float(size.group(1))
        weights, kv_per_token = billions * GB_PER_BILLION, int(billions * KV_BYTES_PER_BILLION)
    return weights + kv_per_token * context / 1e9 + OVERHEAD_GB


def required_gb(models: Sequence[str], context: int) -> float:
    """GB for all `models` loaded together, each with a `context`-token window, rounded up
    to a tenth."""
    total = sum(model_gb(model, context) for model in models)
    return float(-(-round(total * 100) // 10)) / 10
