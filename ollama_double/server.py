"""Ollama API **test double** (server side). This is NOT Ollama.

A small, stdlib-only HTTP server that imitates Ollama's native REST API (``/api/chat``,
``/api/generate``, ``/api/tags``, ``/api/show``, ``/api/ps``, ``/api/pull``, ``/api/delete``,
``/api/version``, ``GET/HEAD /``) closely enough to test a client such as ``proxy_app``.
No model runs here: replies are scripted per test (see :class:`Reply`) or default to "ok".
Digests, sizes and timings are synthetic.

The double is split by concern: ``errors.py`` (Ollama's messages), ``models.py`` (names, sizes,
templates, prompts as tokens), ``scripting.py`` (:class:`Reply`, :class:`RecordedRequest`),
``kv.py`` (:class:`KvSlots`), ``stream.py`` (NDJSON chunks), ``handler.py`` (the routes) and this
module (:class:`OllamaDouble`, the model registry and server lifecycle), which also re-exports
the names tests import. Every module stays valid on Python 3.10 and 3.11 with only the standard
library, without ``from __future__`` or relative imports outside its marked import block:
``archive.py`` concatenates them with ``cli.py`` into a single-file stand-in ``bin/ollama``
for a bare Debian sandbox host.
"""

import collections
import contextlib
import datetime
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

# --- double-import-begin (stripped when building the single-file bin/ollama)
from .errors import ERR_CONTEXT, ERR_QUEUE_FULL
from .handler import _Handler
from .kv import KvSlots, _is_generation
from .models import (
    _KNOWN_MODELS,
    DEFAULT_CONTEXT_LENGTH,
    DEFAULT_MODEL,
    DEFAULT_VERSION,
    QWEN_SYSTEM,
    _digest,
    _local_iso,
    _model_family,
    _parse_keep_alive,
    estimate_prompt_tokens,
    native_answer,
    normalize_model_name,
    prompt_token_ids,
    prompt_tokens_of,
    raw_prompt_ids,
)
from .scripting import QWEN3_CODER_SHAPES, RecordedRequest, Reply

# --- double-import-end

# The names tests and other code import from ollama_double.server.
__all__ = [
    "DEFAULT_VERSION",
    "ERR_CONTEXT",
    "ERR_QUEUE_FULL",
    "QWEN3_CODER_SHAPES",
    "QWEN_SYSTEM",
    "KvSlots",
    "OllamaDouble",
    "RecordedRequest",
    "Reply",
    "estimate_prompt_tokens",
    "native_answer",
    "normalize_model_name",
    "prompt_token_ids",
    "prompt_tokens_of",
    "raw_prompt_ids",
]

class OllamaDouble:
    """Scriptable Ollama API **test double** on 127.0.0.1 (a real HTTP server, not Ollama).

    >>> with OllamaDouble(models=["qwen2.5-coder:7b"]) as od:
    ...     od.script(Reply("hello world"), Reply.http_error(503, ERR_QUEUE_FULL))
    ...     # point the client at od.url; inspect od.chat_requests afterwards
    """

    def __init__(
        self,
        models: Any = (DEFAULT_MODEL,),
        *,
        version: str = DEFAULT_VERSION,
        thinking_models: Any = (),
        tools_models: Any = None,
        context_lengths: dict[str, int] | None = None,
        default_num_ctx: int = 4096,
        host: str = "127.0.0.1",
        port: int = 0,
        models_dir: str | None = None,
        pullable: Any = None,
        pull_steps: int = 4,
        pull_delay: float = 0.0,
        num_parallel: int | None = None,
        max_queue: int = 512,
        chars_per_token: int = 3,
        log_stream: Any = None,
        kv_slots: KvSlots | None = None,
        prefill_rate: float = 5000.0,
        exact_counts: bool = True,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the test double listens on loopback only")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.version = version
        self.models: list[str] = [normalize_model_name(m) for m in models]
        self.thinking_models = {normalize_model_name(m) for m in thinking_models}
        # None = every model has the "tools" capability
        self.tools_models = (
            None if tools_models is None else {normalize_model_name(m) for m in tools_models}
        )
        self.context_lengths = {
            normalize_model_name(k): v for k, v in (context_lengths or {}).items()
        }
        self.default_num_ctx = default_num_ctx
        self.models_dir = models_dir
        self.pullable = None if pullable is None else {normalize_model_name(m) for m in pullable}
        self.pull_steps = pull_steps
        self.pull_delay = pull_delay
        self.num_parallel = num_parallel
        self.max_queue = max_queue
        self.chars_per_token = chars_per_token
        self.log_stream = log_stream
        # KV-cache slot model (None = off); prefill_rate tokens/s makes prompt_eval_duration
        self.kv = kv_slots
        self.prefill_rate = prefill_rate
        # prompt_eval_count in Qwen tokens of the rendered prompt (False: the cheap estimate)
        self.exact_counts = exact_counts
        self.default_reply = Reply()

        self.requests: list[RecordedRequest] = []
        self.disconnected = threading.Event()
        self.cancelled_streams = 0
        self.completed_streams = 0
        self.truncated_prompts = 0
        self.loaded: dict[str, dict[str, Any]] = {}
        self._modified: dict[str, float] = {}
        self._sizes: dict[str, int] = {}
        self._script: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(num_parallel) if num_parallel else None
        self._waiting = 0
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if models_dir:
            self._load_models_dir()

    # ---- lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "OllamaDouble":
        double = self

        class _Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128  # Go's listener uses the system backlog, not 5
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        class _Bound(_Handler):
            pass

        _Bound.double = double
        self._stopping.clear()
        self._httpd = _Server((self.host, self.port), _Bound)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"ollama-double-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Block until :meth:`stop` is called from another thread or a signal handler."""
        while not self._stopping.wait(0.2):
            pass

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "OllamaDouble":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- scripting / inspection
    def script(self, *replies: Reply | str) -> None:
        """Queue replies for successive /api/chat calls (a str is shorthand for Reply(str))."""
        with self._lock:
            for r in replies:
                self._script.append(Reply(r) if isinstance(r, str) else r)

    @property
    def pending_replies(self) -> int:
        return len(self._script)

    @property
    def chat_requests(self) -> list[Any]:
        """Parsed bodies of every generation asked for, in arrival order: each POST /api/chat,
        and each raw POST /api/generate with a prompt (a prompt its client rendered)."""
        return [r.body for r in self.requests if r.method == "POST" and _is_generation(r)]

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        return self.disconnected.wait(timeout)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self.cancelled_streams = self.completed_streams = self.truncated_prompts = 0
            self.disconnected.clear()

    # ---- models
    def has_model(self, name: str) -> bool:
        return normalize_model_name(name) in self.models

    def add_model(self, name: str) -> str:
        name = normalize_model_name(name)
        with self._lock:
            if name not in self.models:
                self.models.append(name)
            self._modified[name] = time.time()
        if self.models_dir:
            self._write_manifest(name)
        return name

    def remove_model(self, name: str) -> bool:
        name = normalize_model_name(name)
        with self._lock:
            if name not in self.models:
                return False
            self.models.remove(name)
            self.loaded.pop(name, None)
        if self.models_dir:
            path = self._manifest_path(name)
            if os.path.exists(path):
                os.remove(path)
        return True

    def prompt_tokens(self, name: str, messages: Any, tools: Any) -> int:
        """The prompt_eval_count this double reports for a chat body."""
        if not self.exact_counts:
            return estimate_prompt_tokens(messages, tools, self.chars_per_token)
        return prompt_tokens_of(name, messages, tools, self.chars_per_token)

    def raw_tokens(self, name: str, text: str) -> list[int]:
        """A raw prompt's (or answer's) tokens: Qwen's ids, or with exact counts off one
        pseudo-token per ``chars_per_token`` characters (no tokenising)."""
        return raw_prompt_ids(name, text, self.chars_per_token, self.exact_counts)

    def capabilities(self, name: str) -> list[str]:
        name = normalize_model_name(name)
        caps = ["completion"]
        if self.tools_models is None or name in self.tools_models:
            caps.append("tools")
        if name in self.thinking_models:
            caps.append("thinking")
        return caps

    def context_length(self, name: str) -> int:
        return self.context_lengths.get(normalize_model_name(name), DEFAULT_CONTEXT_LENGTH)

    def model_size(self, name: str) -> int:
        name = normalize_model_name(name)
        if name in self._sizes:
            return self._sizes[name]
        if name in _KNOWN_MODELS:
            return int(_KNOWN_MODELS[name]["size"])
        return 1_000_000_000 + int(_digest(name)[:6], 16)

    def model_digest(self, name: str) -> str:
        return _digest("manifest", normalize_model_name(name))

    def model_details(self, name: str) -> dict[str, Any]:
        name = normalize_model_name(name)
        family = _model_family(name)
        m = re.search(r"(\d+(?:\.\d+)?)b\b", name.split(":")[-1].lower())
        param = _KNOWN_MODELS.get(name, {}).get("parameter_size") or (
            f"{m.group(1)}B" if m else "7B"
        )
        return {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": param,
            "quantization_level": "Q4_K_M",
        }

    def tag_entry(self, name: str) -> dict[str, Any]:
        name = normalize_model_name(name)
        return {
            "name": name,
            "model": name,
            "modified_at": _local_iso(self._modified.get(name, time.time())),
            "size": self.model_size(name),
            "digest": self.model_digest(name),
            "details": self.model_details(name),
        }

    def _layers(self, name: str) -> list[dict[str, Any]]:
        name = normalize_model_name(name)
        size = self.model_size(name)
        return [
            {"mediaType": "application/vnd.ollama.image.model",
             "digest": "sha256:" + _digest("model", name), "size": size - 1700},
            {"mediaType": "application/vnd.ollama.image.template",
             "digest": "sha256:" + _digest("template", name), "size": 1600},
            {"mediaType": "application/vnd.ollama.image.params",
             "digest": "sha256:" + _digest("params", name), "size": 100},
        ]

    # ---- OLLAMA_MODELS persistence (manifests + small placeholder blobs)
    def _manifest_path(self, name: str) -> str:
        base, tag = normalize_model_name(name).rsplit(":", 1)
        namespace, _, model = base.rpartition("/")
        assert self.models_dir
        return os.path.join(
            self.models_dir, "manifests", "registry.ollama.ai", namespace or "library", model, tag
        )

    def _write_manifest(self, name: str) -> None:
        assert self.models_dir
        layers = self._layers(name)
        config = {"mediaType": "application/vnd.docker.container.image.v1+json",
                  "digest": "sha256:" + _digest("config", name), "size": 487}
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": config,
            "layers": layers,
            "x-test-double": "written by the llm-selfhost Ollama API test double, not Ollama",
        }
        path = self._manifest_path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh)
        blobs = os.path.join(self.models_dir, "blobs")
        os.makedirs(blobs, exist_ok=True)
        for layer in [config, *layers]:
            blob = os.path.join(blobs, layer["digest"].replace(":", "-"))
            if not os.path.exists(blob):
                with open(blob, "w", encoding="utf-8") as fh:
                    fh.write("placeholder blob written by the Ollama API test double\n")

    def _load_models_dir(self) -> None:
        assert self.models_dir
        root = os.path.join(self.models_dir, "manifests", "registry.ollama.ai")
        if not os.path.isdir(root):
            return
        for dirpath, _dirs, files in os.walk(root):
            for tag in files:
                path = os.path.join(dirpath, tag)
                rel = os.path.relpath(dirpath, root).split(os.sep)
                if len(rel) != 2:
                    continue
                namespace, model = rel
                name = f"{model}:{tag}" if namespace == "library" else f"{namespace}/{model}:{tag}"
                try:
                    with open(path, encoding="utf-8") as fh:
                        manifest = json.load(fh)
                    self._sizes[name] = sum(int(x.get("size", 0)) for x in manifest["layers"])
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                if name not in self.models:
                    self.models.append(name)
                self._modified[name] = os.path.getmtime(path)

    # ---- internal bookkeeping
    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _next_reply(self) -> Reply:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return self.default_reply

    def _mark_cancelled(self) -> None:
        with self._lock:
            self.cancelled_streams += 1
        self.disconnected.set()

    def _mark_loaded(self, name: str, num_ctx: int, keep_alive: Any) -> None:
        seconds = _parse_keep_alive(keep_alive)
        name = normalize_model_name(name)
        with self._lock:
            if seconds == 0:
                self.loaded.pop(name, None)
                return
            expires = (
                datetime.datetime(2318, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
                if seconds < 0 else time.time() + seconds
            )
            self.loaded[name] = {"expires": expires, "context_length": num_ctx}

    def _log(self, line: str) -> None:
        if self.log_stream is not None:
            try:
                self.log_stream.write(line + "\n")
                self.log_stream.flush()
            except (OSError, ValueError):
                pass


def _main_server_only() -> int:  # pragma: no cover - debugging aid
    with OllamaDouble(port=int(os.environ.get("PORT", "0")), log_stream=sys.stderr) as od:
        sys.stderr.write(f"Ollama API test double on {od.url}\n")
        with contextlib.suppress(KeyboardInterrupt):
            od.serve_forever()
    return 0
