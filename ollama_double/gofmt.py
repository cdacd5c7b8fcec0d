"""Go's encoding/json and fmt `%v` output for decoded JSON values, as Ollama prints them.

Ollama renders tool schemas and tool-call arguments into the prompt with Go's `json.Marshal`
(map keys sorted, `<`, `>` and `&` escaped as \\u003c…, numbers as float64) and, for the
`{{ .Function }}` of Qwen's templates, with fmt's struct syntax (ollama/ollama#14601).
"""

from __future__ import annotations

import json
import math
from typing import Any

_HTML_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def go_json(value: Any, *, sort_keys: bool = True) -> str:
    """json.Marshal of a value decoded into Go's `any` (maps sorted unless told otherwise)."""
    text = json.dumps(
        _go_numbers(value), ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys
    )
    # The escaped characters only ever occur inside JSON strings, so a plain replace is exact.
    return text.translate(_HTML_ESCAPES)


def go_print(value: Any) -> str:
    """fmt's `%v` of a decoded JSON value: `map[k:v]` sorted, `[a b]`, `<nil>`, raw strings."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _go_float_v(float(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)


def _go_numbers(value: Any) -> Any:
    """Go decodes every JSON number as float64 and prints integral ones without a fraction."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value) if abs(value) < 1e21 else value
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    return value


def _go_float_v(number: float) -> str:
    """fmt's %v of a float64 (strconv 'g', shortest): exponent form when exp < -4 or >= 6."""
    if not math.isfinite(number):
        return "NaN" if math.isnan(number) else ("+Inf" if number > 0 else "-Inf")
    if number == 0:
        return "0"
    mantissa, _, exponent = f"{number:.17e}".partition("e")
    digits = repr(abs(number))  # Python's repr is the shortest round-tripping form, as Go's
    exp = int(exponent)
    if -4 <= exp < 6:
        return str(int(number)) if number.is_integer() else digits if number > 0 else f"-{digits}"
    shortest = digits.replace(".", "").split("e")[0].lstrip("0").rstrip("0") or "0"
    head = shortest[0] + ("." + shortest[1:] if len(shortest) > 1 else "")
    sign = "-" if number < 0 else ""
    return f"{sign}{head}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
