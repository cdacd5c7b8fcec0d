"""Prompt token counts for count_tokens and the context guard: exact for Qwen, else estimated.

Exact: when Ollama's /api/show names a family whose vocabulary we ship (qwen2, qwen3; see
vocab.py) and a model family whose published template we render (proxy_app.families), the
prompt is rendered here, counted with Qwen's BPE, and that very string is what the model
receives (a raw completion, generation.py). The tools section is rendered and counted once per
distinct tool list and cached: Claude Code sends the same tools every turn.

Estimated: any other model gets the characters the model will read at CHARS_PER_TOKEN, plus a
per-message overhead, scaled by a calibration that follows Ollama's reported
`prompt_eval_count` both ways (see Calibration). Either way a prompt Ollama has already counted
is never answered with less than Ollama's count (docs/proxy_app.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import orjson
import tiktoken

from proxy_app import vocab
from proxy_app.engines.chat_template import match_template
from proxy_app.engines.profile import ModelProfile
from proxy_app.families import Family
from proxy_app.families.qwen3coder import QWEN3_CODER
from proxy_app.families.qwen25 import QWEN25

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 3.0
MESSAGE_OVERHEAD = 4
TOOL_OVERHEAD = 12
PROMPT_OVERHEAD = 16
IMAGE_TOKENS = 768  # what Ollama itself budgets per image (server/prompt.go)
MIN_FACTOR, MAX_FACTOR = 0.5, 3.0
REMEMBERED = 512  # prompts whose real count is remembered, and distinct tool lists cached
PIECES = 8192  # counted turns remembered per model (a key and a count each)


def raw_estimate(payload: dict[str, Any]) -> int:
    """Uncalibrated estimate of the prompt tokens of an Ollama /api/chat body."""
    chars = 0
    non_ascii = 0
    messages = payload.get("messages", [])
    for message in messages:
        content = message.get("content") or ""
        chars += len(content)
        if not content.isascii():
            non_ascii += len(content) - len(content.encode("ascii", "ignore"))
        if message.get("tool_calls"):
            chars += len(orjson.dumps(message["tool_calls"]))
        chars += 1000 * len(message.get("images") or [])  # an image is several hundred tokens
    tools = payload.get("tools") or []
    if tools:
        chars += len(orjson.dumps(tools))
    ascii_chars = chars - non_ascii
    return (
        math.ceil(ascii_chars / CHARS_PER_TOKEN)
        + non_ascii
        + MESSAGE_OVERHEAD * len(messages)
        + TOOL_OVERHEAD * len(tools)
        + PROMPT_OVERHEAD
    )


class Calibration:
    """The factor on raw estimates: the highest ratio Ollama reported over the last `window`
    generations, within [MIN_FACTOR, MAX_FACTOR]. It rises at once when Ollama counts more,
    and falls as those observations age out when Ollama counts less."""

    def __init__(self, window: int = 8) -> None:
        self._ratios: deque[float] = deque(maxlen=window)

    @property
    def factor(self) -> float:
        return max(self._ratios, default=1.0)

    def scale(self, raw: int) -> int:
        return math.ceil(raw * self.factor)

    def observe(self, raw: int, prompt_eval_count: int) -> None:
        """Record Ollama's count; ignored when implausibly small (an old Ollama's KV reuse)."""
        if raw > 0 and prompt_eval_count > raw // 4:
            ratio = prompt_eval_count / raw
            self._ratios.append(min(max(ratio, MIN_FACTOR), MAX_FACTOR))


@dataclass
class Measure:
    """One prompt's count: `tokens` is what count_tokens answers and the guard compares.
    `prompt` is the text the model reads, when proxy_app renders it (a known family)."""

    tokens: int
    raw: int
    exact: bool
    fingerprint: bytes
    prompt: str | None = None


def family_for(profile: ModelProfile) -> Family | None:
    """The family whose published template proxy_app renders for this Ollama model: Ollama's
    built-in qwen3-coder renderer, or one of the Go templates Ollama ships for qwen2.5 models."""
    if profile.renderer == QWEN3_CODER.name:
        return QWEN3_CODER
    return QWEN25 if match_template(profile.template) is not None else None


class QwenCounter:
    """Renders one family's prompt and counts it exactly with its vocabulary.

    The prompt is counted in token-exact pieces (system turn, tools section, each later turn),
    each remembered: a conversation's next request only encodes its new turns, and the tools
    section is rendered and encoded once per distinct tool list.
    """

    def __init__(self, encoding: tiktoken.Encoding, family: Family) -> None:
        self.encoding = encoding
        self.family = family
        self._tools: OrderedDict[bytes, tuple[str, int]] = OrderedDict()
        self._pieces: OrderedDict[tuple[int, int], int] = OrderedDict()

    def count(self, payload: dict[str, Any], tools_key: bytes) -> tuple[int, str]:
        """The prompt's tokens, and the prompt."""
        messages = payload.get("messages") or []
        tools = payload.get("tools") or []
        head, pieces = self.family.around_tools(messages, has_tools=bool(tools))
        total = sum(self._piece_tokens(piece) for piece in (head, *pieces))
        total += IMAGE_TOKENS * sum(len(m.get("images") or []) for m in messages)
        section, tokens = self._tools_section(tools, tools_key) if tools else ("", 0)
        return total + tokens, head + section + "".join(pieces)

    def _piece_tokens(self, piece: str) -> int:
        key = (hash(piece), len(piece))
        known = self._pieces.get(key)  # one lookup: counts run on several worker threads
        if known is not None:
            with contextlib.suppress(KeyError):  # evicted by another thread meanwhile
                self._pieces.move_to_end(key)
            return known
        tokens = self._pieces[key] = vocab.count(self.encoding, piece)
        if len(self._pieces) > PIECES:
            self._pieces.popitem(last=False)
        return tokens

    def _tools_section(self, tools: list[dict[str, Any]], key: bytes) -> tuple[str, int]:
        known = self._tools.get(key)
        if known is not None:
            with contextlib.suppress(KeyError):  # another thread may have evicted it
                self._tools.move_to_end(key)
            return known
        section = self.family.tools(tools)
        entry = self._tools[key] = section, vocab.count(self.encoding, section)
        if len(self._tools) > REMEMBERED:
            self._tools.popitem(last=False)
        return entry


class TokenCounter:
    """Counts prompts per model; calibrates estimates; remembers what Ollama counted."""

    def __init__(self) -> None:
        self._exact: dict[ModelProfile, QwenCounter | None] = {}
        self._calibration: dict[str, Calibration] = {}
        self._seen: OrderedDict[bytes, int] = OrderedDict()
        self._warned: set[str] = set()

    def exact_counter(self, profile: ModelProfile) -> QwenCounter | None:
        """The exact counter for a model, or None when its vocabulary or template is unknown."""
        if profile not in self._exact:
            encoding = vocab.vocabulary_for(profile.family)
            family = family_for(profile)
            self._exact[profile] = (
                QwenCounter(encoding, family)
                if encoding is not None and family is not None
                else None
            )
        return self._exact[profile]

    def measure(self, model: str, profile: ModelProfile, payload: dict[str, Any]) -> Measure:
        tools_key = hashlib.blake2b(orjson.dumps(payload.get("tools") or []), digest_size=16)
        fingerprint = hashlib.blake2b(
            orjson.dumps(payload.get("messages") or []) + tools_key.digest(), digest_size=16
        ).digest()
        counter = self.exact_counter(profile)
        prompt = None
        if counter is not None:
            raw, prompt = counter.count(payload, tools_key.digest())
            tokens = raw
        else:
            raw = raw_estimate(payload)
            tokens = self._calibration.setdefault(model, Calibration()).scale(raw)
        tokens = max(tokens, self._seen.get(fingerprint, 0))
        return Measure(tokens, raw, counter is not None, fingerprint, prompt)

    def observe(self, model: str, measure: Measure, prompt_eval_count: int) -> None:
        """Learn from Ollama's `prompt_eval_count` for a prompt measured before."""
        self._seen[measure.fingerprint] = prompt_eval_count
        self._seen.move_to_end(measure.fingerprint)
        if len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
        if not measure.exact:
            self._calibration.setdefault(model, Calibration()).observe(
                measure.raw, prompt_eval_count
            )
        elif prompt_eval_count != measure.raw and model not in self._warned:
            self._warned.add(model)
            log.warning(
                "exact count for %s was %d tokens but Ollama counted %d; the template or "
                "vocabulary may have changed (count_tokens now answers at least Ollama's count "
                "for prompts it has seen)",
                model,
                measure.raw,
                prompt_eval_count,
            )
