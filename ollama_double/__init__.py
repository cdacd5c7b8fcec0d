"""Ollama API test double for llm-selfhost's tests. NOT Ollama, never imported by proxy_app.

- :class:`OllamaDouble` -- a real HTTP server on 127.0.0.1 imitating Ollama's native REST API,
  scriptable per test with :class:`Reply` objects (see server.py).
- ``python3 -m ollama_double`` -- a stand-in ``ollama`` CLI (serve/list/pull/ps/rm/show/run/-v).
- :func:`build_archive` -- a reproducible fake ``ollama-linux-amd64.tar.zst`` release whose
  ``bin/ollama`` is this double as a single python3 script (archive.py).
"""

from .archive import build_archive, build_script
from .server import (
    DEFAULT_VERSION,
    ERR_CONTEXT,
    ERR_QUEUE_FULL,
    OllamaDouble,
    RecordedRequest,
    Reply,
    estimate_prompt_tokens,
    normalize_model_name,
)

__all__ = [
    "DEFAULT_VERSION",
    "ERR_CONTEXT",
    "ERR_QUEUE_FULL",
    "OllamaDouble",
    "RecordedRequest",
    "Reply",
    "build_archive",
    "build_script",
    "estimate_prompt_tokens",
    "normalize_model_name",
]
