"""What an engine says about a model that changes its prompt (Ollama: /api/show; an
OpenAI-compatible server: its /props or nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelProfile:
    """What /api/show says about a model that changes its prompt: family, template, SYSTEM."""

    family: str = ""
    template: str = ""
    system: str = ""
    capabilities: tuple[str, ...] = ()
    renderer: str = ""  # a built-in renderer instead of the template (e.g. "qwen3-coder")

    @classmethod
    def from_show(cls, shown: dict[str, Any]) -> ModelProfile:
        details = shown.get("details") or {}
        info = shown.get("model_info") or {}
        family = details.get("family") or info.get("general.architecture") or ""
        return cls(
            family=str(family),
            template=str(shown.get("template") or ""),
            system=str(shown.get("system") or ""),
            capabilities=tuple(shown.get("capabilities") or ()),
            renderer=str(shown.get("renderer") or ""),
        )
