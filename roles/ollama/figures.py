"""What the models the deploy knows weigh on a GPU: read by the deploy's GPU profiles
(roles/ollama/profiles.py) and by `make up`'s VRAM filter (fleet/vram.py), so neither imports
the other (deploy code never depends on the control machine's commands)."""

from __future__ import annotations

# Ollama library download sizes (Q4_K_M) in GB and f16 KV-cache bytes per token:
# 2 (K and V) x layers x KV heads x head dim x 2 bytes, from each model's config.
KNOWN: dict[str, tuple[float, int]] = {
    "qwen2.5-coder:0.5b": (0.40, 2 * 24 * 2 * 64 * 2),
    "qwen2.5-coder:1.5b": (0.99, 2 * 28 * 2 * 128 * 2),
    "qwen2.5-coder:3b": (1.9, 2 * 36 * 2 * 128 * 2),
    "qwen2.5-coder:7b": (4.7, 2 * 28 * 4 * 128 * 2),
    "qwen2.5-coder:14b": (9.0, 2 * 48 * 8 * 128 * 2),
    "qwen2.5-coder:32b": (20.0, 2 * 64 * 8 * 128 * 2),
    "qwen3-coder:30b": (19.0, 2 * 48 * 4 * 128 * 2),  # Qwen3-Coder-30B-A3B: 48 layers, 4 KV heads
}
OVERHEAD_GB = 1.0
