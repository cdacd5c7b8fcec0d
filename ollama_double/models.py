"""The models the Ollama API test double knows: names, sizes, templates, prompts as tokens.

Prompts are rendered as Ollama renders them where the repository's renderers are importable
(not in the single-file stand-in), else estimated from characters.

It must stay valid on Python 3.10 and 3.11 with only the standard library, without
``from __future__`` or relative imports outside its marked import block: ``archive.py``
concatenates the double's modules into the single-file stand-in ``bin/ollama``.
"""

import datetime
import hashlib
import json
import math
import random
import re
import string
from typing import Any

try:  # Ollama's exact prompt and Qwen's vocabulary; absent in the sandbox's stdlib-only stand-in
    from ollama_double import qwen3coder_renderer as _qwen3coder
    from ollama_double import qwen_template as _qwen_render
    from proxy_app import vocab as _vocab
    from proxy_app.engines import chat_template as _chat_template

    _RENDERS_PROMPTS = True
except ImportError:  # the single-file bin/ollama: these names stay unbound, never read
    _RENDERS_PROMPTS = False

DEFAULT_VERSION = "0.12.11"
DEFAULT_MODEL = "qwen2.5-coder:7b"
DEFAULT_CONTEXT_LENGTH = 32768
# Test-double-only endpoint: other processes (tests driving the sandbox) queue replies here.
DOUBLE_SCRIPT_PATH = "/api/_double/script"

# Real-ish numbers for the one model this project serves; everything else is derived.
_KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "qwen2.5-coder:7b": {"size": 4683087332, "parameter_size": "7.6B"},
}


# --------------------------------------------------------------------------- helpers


def now_rfc3339() -> str:
    """UTC timestamp shaped like Go's RFC3339Nano (``2025-01-01T00:00:00.123456Z``)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _local_iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).astimezone().isoformat()


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def normalize_model_name(name: str) -> str:
    """``qwen2.5-coder`` -> ``qwen2.5-coder:latest``; strips ``registry.ollama.ai/library/``."""
    name = name.strip()
    for prefix in ("registry.ollama.ai/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def estimate_prompt_tokens(
    messages: Any, tools: Any = None, chars_per_token: int = 3
) -> int:
    """The double's prompt-size estimate: ``len(json(messages+tools)) // chars_per_token``."""
    payload = json.dumps(
        {"messages": messages or [], "tools": tools or []},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return max(1, len(payload) // chars_per_token)


QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def _qwen_template(
    name: str,
) -> "_chat_template.QwenTemplate | _qwen3coder.Qwen3CoderRenderer | None":
    """What renders a Qwen model's prompt in Ollama: the Go template it ships for qwen2 models,
    the built-in renderer for qwen3-coder (None without proxy_app at hand, or for others)."""
    if not _RENDERS_PROMPTS:
        return None
    family = _model_family(name)
    if family == "qwen3moe" and _is_qwen3_coder(name):
        return _qwen3coder.Qwen3CoderRenderer()
    if family != "qwen2":
        return None
    coder = "coder" in name.split(":")[0]
    return _chat_template.QWEN25_CODER if coder else _chat_template.QWEN25


# /api/show's template for models whose own this double does not reproduce (a Qwen2.5 one)
_SHOW_TEMPLATE = (
    "{{- if .Messages }}{{- if or .System .Tools }}<|im_start|>system\n"
    "{{- if .System }}\n{{ .System }}{{- end }}{{- if .Tools }}\n\n# Tools\n\n<tools>"
    "{{- range .Tools }}\n{\"type\": \"function\", \"function\": {{ .Function }}}"
    "{{- end }}\n</tools>\n\nFor each function call, return a json object with function "
    "name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"
    "{{- end }}<|im_end|>\n{{ end }}{{- end }}"
)


def _show_template(name: str) -> dict[str, str]:
    """/api/show's prompt fields: a Go template (with the SYSTEM it pairs with when it is one
    Ollama ships), or a built-in renderer and parser by name (qwen3-coder)."""
    qwen = _qwen_template(name)
    if qwen is None:
        return {"template": _SHOW_TEMPLATE}
    if isinstance(qwen, _chat_template.QwenTemplate):
        return {"template": qwen.source(), "system": QWEN_SYSTEM}
    return {"template": _SHOW_TEMPLATE, "renderer": qwen.name, "parser": qwen.name}


def _is_qwen3_coder(name: str) -> bool:
    return name.split(":")[0].rsplit("/", 1)[-1].lower().startswith("qwen3-coder")


def _default_system(name: str) -> str:
    """The model's SYSTEM (Modelfile): qwen2.5 models have one, qwen3-coder none."""
    return "" if _is_qwen3_coder(name) else QWEN_SYSTEM


def rendered_prompt(name: str, messages: Any, tools: Any) -> str | None:
    """The prompt Ollama builds for this model and body, or None when not reproduced."""
    template = _qwen_template(name)
    if template is None:
        return None
    tools = tools or []
    system = _default_system(name)
    if isinstance(template, _chat_template.QwenTemplate):
        return _qwen_render.render(template, messages or [], tools, default_system=system)
    head, pieces = template.around_tools(messages or [], has_tools=bool(tools),
                                         default_system=system)
    return head + (template.tools(tools) if tools else "") + "".join(pieces)


def _qwen_prompt_ids(name: str, messages: Any, tools: Any) -> list[int] | None:
    """Qwen's token ids of the prompt Ollama renders (special tokens one each, as
    llama-server parses them), or None when the prompt or its vocabulary is not reproduced."""
    text = rendered_prompt(name, messages, tools)
    if text is None:
        return None
    encoding = _vocab.vocabulary_for(_model_family(name))
    return None if encoding is None else encoding.encode(text, allowed_special="all")


def prompt_tokens_of(name: str, messages: Any, tools: Any, chars_per_token: int = 3) -> int:
    """What Ollama would report as prompt_eval_count: exact for Qwen models whose prompt we
    render (encoded with Qwen's vocabulary, as llama-server does), else the double's estimate."""
    ids = _qwen_prompt_ids(name, messages, tools)
    if ids is None:
        return estimate_prompt_tokens(messages, tools, chars_per_token)
    images = sum(len(m.get("images") or []) for m in messages or [] if isinstance(m, dict))
    return len(ids) + 768 * images


def _estimate_output_tokens(text: str, chars_per_token: int = 3) -> int:
    return max(1, math.ceil(len(text) / chars_per_token)) if text else 0


def _model_family(name: str) -> str:
    base = name.split(":")[0].rsplit("/", 1)[-1].lower()
    for prefix, family in (
        ("qwen2", "qwen2"),
        ("qwen3-coder", "qwen3moe"),
        ("qwen3", "qwen3"),
        ("llama", "llama"),
        ("gemma3", "gemma3"),
        ("gpt-oss", "gptoss"),
    ):
        if base.startswith(prefix):
            return family
    return re.sub(r"[^a-z0-9]", "", base) or "llama"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _split_words(text: str) -> list[str]:
    """Token-ish pieces: each word keeps its leading whitespace."""
    return re.findall(r"\s*\S+|\s+$", text) if text else []


def _split_n(text: str, n: int) -> list[str]:
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size, extra = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        step = size + (1 if i < extra else 0)
        out.append(text[pos : pos + step])
        pos += step
    return out


def _random_call_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "call_" + "".join(random.choice(alphabet) for _ in range(8))


def _parse_keep_alive(value: Any, default: float = 300.0) -> float:
    """Seconds; negative = forever. Accepts numbers and Go durations like ``5m``/``1h30m``."""
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    sign = -1.0 if text.startswith("-") else 1.0
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        total += float(num) * units[unit]
    return sign * total


def raw_prompt_ids(name: str, text: str, chars_per_token: int = 3, exact: bool = True) -> list[int]:
    """A raw prompt as tokens: Qwen's ids (special tokens one each) for Qwen models when
    proxy_app's vocabulary is at hand (and ``exact``), else one pseudo-token per
    ``chars_per_token`` characters."""
    if exact and _RENDERS_PROMPTS:
        encoding = _vocab.vocabulary_for(_model_family(name))
        if encoding is not None:
            return encoding.encode(text, allowed_special="all")
    return [hash(text[i:i + chars_per_token]) for i in range(0, len(text), chars_per_token)]


def native_answer(name: str, content: str, calls: list[dict[str, Any]] | None) -> str:
    """What a Qwen model writes for a reply of text and tool calls: its training format, as the
    published chat template renders an assistant turn (Qwen2.5: `text` + "\n<tool_call>\n{json}
    \n</tool_call>" per call; Qwen3-Coder: the trimmed text, then each call as XML)."""
    if not calls:
        return content
    out = ""
    if _is_qwen3_coder(name):
        out = content.strip() + "\n" if content.strip() else ""
        for call in calls:
            fn = call.get("function", call)
            params = "".join(f"<parameter={k}>\n{_xml_value(v)}\n</parameter>\n"
                             for k, v in (fn.get("arguments") or {}).items())
            out += f"\n<tool_call>\n<function={fn['name']}>\n{params}</function>\n</tool_call>"
    else:
        out = content
        for call in calls:
            fn = call.get("function", call)
            call_json = json.dumps(fn.get("arguments") or {}, ensure_ascii=False)
            call_json = f'{{"name": "{fn["name"]}", "arguments": {call_json}}}'
            out += f"\n<tool_call>\n{call_json}\n</tool_call>"
    return out[1:] if out.startswith("\n") and not content.strip() else out


def _xml_value(value: Any) -> str:
    """A parameter value as Qwen3-Coder's template prints it (JSON for maps and lists)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value if isinstance(value, str) else str(value)


def prompt_token_ids(name: str, messages: Any, tools: Any, chars_per_token: int = 3) -> list[int]:
    """The prompt as tokens: Qwen's ids of the rendered prompt for qwen2 models, else one
    pseudo-token per ``chars_per_token`` characters of the request's JSON."""
    ids = _qwen_prompt_ids(name, messages, tools)
    if ids is not None:
        return ids
    payload = json.dumps({"messages": messages or [], "tools": tools or []}, sort_keys=True)
    return [hash(payload[i:i + chars_per_token]) for i in range(0, len(payload), chars_per_token)]
