"""Model families whose prompt proxy_app renders itself: each in its published chat template.

A family renders an Ollama-shaped conversation (the `messages` and `tools` of translate.py's
body, the same shape Hugging Face chat templates take) into the exact text the model reads, in
token-exact pieces: ``head + tools(…) + "".join(pieces)`` is the prompt, and no BPE token
crosses a boundary (the head ends in "\\n\\n" or a special token, the tools section starts with
"#", and every later piece starts with a special token), so each piece can be counted once and
remembered. The same string is sent to the engine as a raw completion (ARCHITECTURE.md, "What
the model reads"): what is counted is what the model receives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from proxy_app.families.qwen3coder import QWEN3_CODER
from proxy_app.families.qwen25 import QWEN25


class Family(Protocol):
    """One model family's published chat template, rendered in token-exact pieces."""

    @property
    def name(self) -> str: ...

    @property
    def vocabulary(self) -> str:
        """The vocabulary its models share (proxy_app.vocab's family key)."""
        ...

    def around_tools(
        self, messages: Sequence[dict[str, Any]], *, has_tools: bool
    ) -> tuple[str, list[str]]:
        """The prompt before the tools section, and after it one piece per turn (the last one
        ending with the generation prompt `<|im_start|>assistant\\n`, or an open prefill)."""
        ...

    def tools(self, tools: Sequence[dict[str, Any]]) -> str:
        """The tools section, from "# Tools" to the end of its instructions."""
        ...


FAMILIES: dict[str, Family] = {QWEN25.name: QWEN25, QWEN3_CODER.name: QWEN3_CODER}


def render(
    family: Family, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] = ()
) -> str:
    """The whole prompt the model reads for this conversation."""
    head, pieces = family.around_tools(messages, has_tools=bool(tools))
    return head + (family.tools(tools) if tools else "") + "".join(pieces)


def family_named(model: str) -> Family | None:
    """The family of an Ollama model name, offline (`python -m proxy_app.prompt`): qwen3-coder*
    and qwen2.5* (coder included) models; None for any other name."""
    base = model.split(":")[0].rsplit("/", 1)[-1].lower()
    if base.startswith("qwen3-coder"):
        return QWEN3_CODER
    if base.startswith("qwen2.5"):
        return QWEN25
    return None
