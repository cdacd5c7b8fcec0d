"""Ollama API **test double** (server side). This is NOT Ollama.

A small, stdlib-only HTTP server that imitates Ollama's native REST API (``/api/chat``,
``/api/generate``, ``/api/tags``, ``/api/show``, ``/api/ps``, ``/api/pull``, ``/api/delete``,
``/api/version``, ``GET/HEAD /``) closely enough to test a client such as ``proxy_app``.
No model runs here: replies are scripted per test (see :class:`Reply`) or default to "ok".
Digests, sizes and timings are synthetic.

It must stay valid on Python 3.10 and 3.11 with only the standard library, and it must not use
``from __future__`` or relative imports: ``archive.py`` concatenates this file with ``cli.py`` into
a single-file stand-in ``bin/ollama`` for a bare Debian sandbox host.
"""

import collections
import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import random
import re
import select
import socket
import string
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

try:  # Ollama's exact prompt and Qwen's vocabulary; absent in the sandbox's stdlib-only stand-in
    from ollama_double import qwen3coder_renderer as _qwen3coder
    from ollama_double import qwen_template as _qwen_render
    from proxy_app.engines import chat_template as _chat_template
    from proxy_app import vocab as _vocab

    _RENDERS_PROMPTS = True
except ImportError:  # the single-file bin/ollama: these names stay unbound, never read
    _RENDERS_PROMPTS = False

DEFAULT_VERSION = "0.12.11"
DEFAULT_MODEL = "qwen2.5-coder:7b"
DEFAULT_CONTEXT_LENGTH = 32768
# Test-double-only endpoint: other processes (tests driving the sandbox) queue replies here.
DOUBLE_SCRIPT_PATH = "/api/_double/script"
ERR_QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"
ERR_CONTEXT = "the input length exceeds the context length"
ERR_PULL_MANIFEST = "pull model manifest: file does not exist"
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


# --------------------------------------------------------------------------- scripting


@dataclasses.dataclass
class Reply:
    """One scripted answer for one ``/api/chat`` call (test double scripting, not Ollama).

    content          assistant text; split into ``chunks`` pieces (default: one piece per word)
    tool_calls       list of ``{"name", "arguments": {...}}`` (or full Ollama shape); sent whole
                     in a single chunk after the text, ids ``call_xxxxxxxx`` (version >= 0.12.10)
    thinking         text streamed in ``message.thinking`` before the content
    done_reason      "stop" (default) / "length"; None lets ``options.num_predict`` decide
    prompt_eval_count, eval_count   override the estimates (the scripted prompt count is also
                     what the context-length check uses)
    status, error    status != 200 -> HTTP error ``{"error": error}`` before any chunk
    error_after      with ``error`` and status 200: after K content chunks send the NDJSON line
                     ``{"error": ...}`` and end the stream (HTTP status stays 200)
    first_chunk_delay  seconds of "prefill" before the response headers/first chunk
    chunk_delay      seconds between chunks
    hang             after the content, keep streaming ``hang_text`` every ``hang_interval``
                     seconds until the client disconnects (or the double stops)
    raw_lines        if set, written verbatim as the NDJSON lines (no final chunk is added)
    """

    content: str = "ok"
    chunks: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    thinking: str | None = None
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    status: int = 200
    error: str | None = None
    error_after: int | None = None
    first_chunk_delay: float = 0.0
    chunk_delay: float = 0.0
    hang: bool = False
    hang_interval: float = 0.05
    hang_text: str = "."
    raw_lines: list[Any] | None = None

    @classmethod
    def http_error(cls, status: int, message: str, **kw: Any) -> "Reply":
        return cls(content="", status=status, error=message, **kw)

    @classmethod
    def stream_error(cls, message: str, after: int = 1, content: str = "partial answer here",
                     **kw: Any) -> "Reply":
        return cls(content=content, error=message, error_after=after, **kw)

    @classmethod
    def qwen3_coder(cls, calls: list[dict[str, Any]], text: str = "",
                    shape: str = "well_formed", **kw: Any) -> "Reply":
        """qwen3-coder's tool calls written as text, the way they reach a client when Ollama's
        parser misses them: ``text`` then each call in the XML-style format, in one ``shape``
        of QWEN3_CODER_SHAPES (well-formed, or a malformed variant seen in practice)."""
        body = "".join(qwen3_coder_call_text(c["name"], c.get("arguments") or {}, shape)
                       for c in calls)
        return cls(content=text + body, **kw)

    def content_pieces(self) -> list[str]:
        if self.chunks is not None:
            return _split_n(self.content, self.chunks)
        return _split_words(self.content)


QWEN3_CODER_SHAPES = (
    "well_formed", "no_function_close", "no_tool_call_close", "no_wrapper",
    "parameters_after_function", "json_in_parameter",
)


def qwen3_coder_call_text(name: str, arguments: dict[str, Any], shape: str = "well_formed") -> str:
    """One call in qwen3-coder's format (Ollama model/renderers/qwen3coder.go): values as raw
    text, non-strings as JSON; ``shape`` picks a malformed variant."""
    if shape not in QWEN3_CODER_SHAPES:
        raise ValueError(f"unknown qwen3-coder shape {shape!r}; one of {QWEN3_CODER_SHAPES}")

    def value(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    params = "".join(f"<parameter={k}>\n{value(v)}\n</parameter>\n" for k, v in arguments.items())
    if shape == "json_in_parameter":
        params = f"<parameter=arguments>\n{json.dumps(arguments)}\n</parameter>\n"
    if shape == "parameters_after_function":
        return f"<tool_call>\n<function={name}>\n</function>\n{params}</tool_call>\n"
    close = "" if shape == "no_function_close" else "</function>\n"
    function = f"<function={name}>\n{params}{close}"
    if shape == "no_wrapper":
        return function
    return "<tool_call>\n" + function + ("" if shape == "no_tool_call_close" else "</tool_call>\n")


class RecordedRequest(NamedTuple):
    method: str
    path: str
    body: Any  # parsed JSON, None when empty/invalid
    headers: dict[str, str]


class _ClientGone(Exception):
    """The client closed the connection (or the double is stopping)."""


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- server


class KvSlots:
    """The double's model of Ollama's KV cache (not Ollama): each loaded model has
    ``slots_per_model`` slots (OLLAMA_NUM_PARALLEL), each holding the tokens of the last prompt
    it served plus the answer; at most ``max_loaded`` models stay loaded (OLLAMA_MAX_LOADED_MODELS),
    loading another evicts the least recently used with its slots. A request takes the slot whose
    cached prefix covers at least ``similarity`` of its prompt (the best one), else the least
    recently used slot (llama-server's choice, --slot-prompt-similarity 0.1), and prefills only
    what that slot does not hold. llama-server's host-RAM prompt cache (--cache-ram) is not
    modelled: it can restore an evicted prefix faster than a prefill."""

    def __init__(self, slots_per_model: int = 1, max_loaded: int | None = None,
                 similarity: float = 0.1) -> None:
        self.slots_per_model = slots_per_model
        self.max_loaded = max_loaded
        self.similarity = similarity
        self.models: collections.OrderedDict[str, list[list[int]]] = collections.OrderedDict()
        self.used: dict[str, list[int]] = {}  # per model: when each slot was last used
        self.prefilled: collections.Counter[str] = collections.Counter()
        self.reused: collections.Counter[str] = collections.Counter()
        self.evictions = 0
        self.log: list[tuple[str, int, int]] = []  # (model, prompt tokens, prefilled)

    def serve(self, model: str, prompt: list[int], answer: list[int]) -> int:
        """Tokens of ``prompt`` the model must prefill; the chosen slot then holds both."""
        if model in self.models:
            self.models.move_to_end(model)
        else:
            if self.max_loaded is not None and len(self.models) >= self.max_loaded:
                evicted, _ = self.models.popitem(last=False)
                self.used.pop(evicted, None)
                self.evictions += 1
            self.models[model] = [[] for _ in range(max(1, self.slots_per_model))]
            self.used[model] = [0] * max(1, self.slots_per_model)
        slots, used = self.models[model], self.used[model]
        shared = [_common_prefix(slot, prompt) for slot in slots]
        best = shared.index(max(shared))
        if not prompt or shared[best] / len(prompt) <= self.similarity:
            best = used.index(min(used))  # no slot is similar enough: the least recently used
        prefill = len(prompt) - shared[best]
        slots[best] = prompt + answer
        used[best] = len(self.log) + 1
        self.prefilled[model] += prefill
        self.reused[model] += shared[best]
        self.log.append((model, len(prompt), prefill))
        return prefill


def _is_generation(request: RecordedRequest) -> bool:
    body = request.body if isinstance(request.body, dict) else {}
    return request.path == "/api/chat" or (
        request.path == "/api/generate" and bool(body.get("raw")) and bool(body.get("prompt"))
    )


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


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prompt_token_ids(name: str, messages: Any, tools: Any, chars_per_token: int = 3) -> list[int]:
    """The prompt as tokens: Qwen's ids of the rendered prompt for qwen2 models, else one
    pseudo-token per ``chars_per_token`` characters of the request's JSON."""
    ids = _qwen_prompt_ids(name, messages, tools)
    if ids is not None:
        return ids
    payload = json.dumps({"messages": messages or [], "tools": tools or []}, sort_keys=True)
    return [hash(payload[i:i + chars_per_token]) for i in range(0, len(payload), chars_per_token)]


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


class _Answer(NamedTuple):
    """What one /api/chat call answers, once ``num_predict`` and ``think`` have applied."""

    content: str
    pieces: list[str]
    thinking: str | None
    tool_calls: list[dict[str, Any]] | None
    done_reason: str
    eval_count: int


class _Turn(NamedTuple):
    """One generation (/api/chat, or a raw /api/generate): its answer and the numbers its final
    chunk reports."""

    base: dict[str, Any]
    t0: int
    prompt_tokens: int
    prefill_ns: int | None
    answer: _Answer
    raw: bool = False  # /api/generate's shape: the text in `response`, no `message`

    def _body(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {"response": msg.get("content", "")} if self.raw else {"message": msg}

    def chunk(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {**self.base, "created_at": now_rfc3339(), **self._body(msg), "done": False}

    def final(self, msg: dict[str, Any], t_first: int) -> dict[str, Any]:
        t_end = time.monotonic_ns()
        return {**self.base, "created_at": now_rfc3339(), **self._body(msg), "done": True,
                "done_reason": self.answer.done_reason,
                "total_duration": max(t_end - self.t0, 2_000_000),
                "load_duration": 1_000_000, "prompt_eval_count": self.prompt_tokens,
                "prompt_eval_duration": self.prefill_ns or max(t_first - self.t0, 1),
                "eval_count": self.answer.eval_count,
                "eval_duration": max(t_end - t_first, 1)}


def _message(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **extra}


def _stream_messages(reply: Reply, answer: _Answer) -> tuple[list[dict[str, Any]], int | None]:
    """The streamed messages (thinking, content, then the tool calls in one) and the index
    where a scripted mid-stream error replaces them (None: no error)."""
    lines = [_message("", thinking=piece) for piece in _split_words(answer.thinking or "")]
    content_lines = [_message(piece) for piece in answer.pieces]
    error_at = None
    if reply.error is not None:
        error_at = len(lines) + min(reply.error_after or 0, len(content_lines))
    lines += content_lines
    if answer.tool_calls:
        lines.append(_message("", tool_calls=answer.tool_calls))
    return lines, error_at


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler (keep-alive, chunked NDJSON streaming) for :class:`OllamaDouble`."""

    # Go's net/http sets TCP_NODELAY on every connection, as Ollama's server does.
    disable_nagle_algorithm = True

    protocol_version = "HTTP/1.1"
    double: OllamaDouble
    _started = 0.0
    _status = 0

    # ---- plumbing
    def setup(self) -> None:
        super().setup()
        with self.double._lock:
            self.double._connections.add(self.connection)

    def finish(self) -> None:
        with self.double._lock:
            self.double._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _access_log(self) -> None:
        ms = (time.monotonic() - self._started) * 1000
        stamp = time.strftime("%Y/%m/%d - %H:%M:%S")
        self.double._log(
            f'[GIN] {stamp} | {self._status:3d} | {ms:10.3f}ms | {self.client_address[0]:>15} | '
            f'{self.command:<7} "{self.path}"'
        )

    def send_response(self, code: int, message: str | None = None) -> None:
        # Go's net/http sends no Server header; keep Date like it does.
        self._status = code
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_bytes(self, status: int, body: bytes, ctype: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send_bytes(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def _send_error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message})

    def _client_closed(self) -> bool:
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            return bool(self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"")
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True

    def _sleep(self, seconds: float) -> None:
        """Sleep, but notice a client disconnect (Ollama cancels on request-context close)."""
        deadline = time.monotonic() + seconds
        while True:
            if self.double._stopping.is_set():
                raise _ClientGone("double stopping")
            if self._client_closed():
                self.double._mark_cancelled()
                raise _ClientGone("client closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.02))

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_line(self, obj: Any) -> None:
        data = json.dumps(obj).encode() + b"\n"
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError as exc:
            if not self.double._stopping.is_set():
                self.double._mark_cancelled()
            raise _ClientGone(str(exc)) from exc

    def _end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError as exc:
            raise _ClientGone(str(exc)) from exc

    # ---- dispatch
    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self, head: bool = False) -> None:
        self._started = time.monotonic()
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        body: Any = None
        bad_json: str | None = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                bad_json = f"invalid character in request body: {exc}"
        self.double._record(
            RecordedRequest(self.command, path, body, {k: v for k, v in self.headers.items()})
        )
        # GET/HEAD handlers take whether to omit the body; the others the request's JSON object
        reads: dict[tuple[str, str], Callable[[bool], None]] = {
            ("GET", "/"): self._root, ("HEAD", "/"): self._root,
            ("GET", "/api/version"): self._version, ("HEAD", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags, ("HEAD", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps,
        }
        writes: dict[tuple[str, str], Callable[[dict[str, Any], bool], None]] = {
            ("POST", "/api/show"): self._show,
            ("POST", "/api/pull"): self._pull,
            ("DELETE", "/api/delete"): self._delete,
            ("POST", "/api/generate"): self._generate,
            ("POST", "/api/chat"): self._chat,
            ("POST", DOUBLE_SCRIPT_PATH): self._script,
        }
        read, write = reads.get((self.command, path)), writes.get((self.command, path))
        try:
            if read is not None:
                read(head)
            elif write is None:
                self._send_bytes(404, b"404 page not found", "text/plain", head=head)
            elif bad_json is not None:
                self._send_error(400, bad_json)
            elif raw.strip() and not isinstance(body, dict):
                self._send_error(400, "json: cannot unmarshal into Go value of type api.Request")
            else:
                write(body or {}, not raw.strip())
        except _HTTPError as exc:
            self._send_error(exc.status, exc.message)
        except _ClientGone:
            self.close_connection = True
        except OSError:
            self.close_connection = True
        finally:
            self._access_log()

    # ---- test-double control (not part of Ollama's API)
    def _script(self, body: dict[str, Any], raw_empty: bool = False) -> None:
        """Queue replies from another process (the sandbox's stand-in `ollama serve`):
        ``{"replies": [{...Reply fields...}, ...]}``; answers the number queued."""
        fields = {f.name for f in dataclasses.fields(Reply)}
        replies = body.get("replies")
        if not isinstance(replies, list) or not all(isinstance(r, dict) for r in replies):
            raise _HTTPError(400, "replies must be a list of objects")
        unknown = {k for r in replies for k in r} - fields
        if unknown:
            raise _HTTPError(400, f"unknown Reply fields: {sorted(unknown)}")
        self.double.script(*(Reply(**r) for r in replies))
        payload = json.dumps({"queued": self.double.pending_replies}).encode()
        self._send_bytes(200, payload, "application/json; charset=utf-8")

    # ---- simple endpoints
    def _root(self, head: bool) -> None:
        self._send_bytes(200, b"Ollama is running", "text/plain; charset=utf-8", head=head)

    def _version(self, head: bool) -> None:
        body = json.dumps({"version": self.double.version}).encode()
        self._send_bytes(200, body, "application/json; charset=utf-8", head=head)

    def _tags(self, head: bool) -> None:
        d = self.double
        body = json.dumps({"models": [d.tag_entry(m) for m in list(d.models)]}).encode()
        self._send_bytes(200, body, "application/json; charset=utf-8", head=head)

    def _ps(self, head: bool) -> None:
        d = self.double
        now = time.time()
        models = []
        with d._lock:
            loaded = dict(d.loaded)
        for name, info in loaded.items():
            if info["expires"] < now or name not in d.models:
                continue
            entry = d.tag_entry(name)
            entry.pop("modified_at")
            entry["expires_at"] = _local_iso(info["expires"])
            entry["size_vram"] = entry["size"]
            entry["context_length"] = info["context_length"]
            models.append(entry)
        body = json.dumps({"models": models}).encode()
        self._send_bytes(200, body, "application/json; charset=utf-8", head=head)

    def _require_model(self, body: dict[str, Any], raw_empty: bool) -> str:
        if raw_empty:
            raise _HTTPError(400, "missing request body")
        name = body.get("model") or body.get("name") or ""
        if not isinstance(name, str) or not name:
            raise _HTTPError(400, "model is required")
        return name

    def _known_model(self, body: dict[str, Any], raw_empty: bool) -> str:
        name = self._require_model(body, raw_empty)
        if not self.double.has_model(name):
            raise _HTTPError(404, f"model '{name}' not found")
        return normalize_model_name(name)

    def _show(self, body: dict[str, Any], raw_empty: bool = False) -> None:
        d = self.double
        name = self._known_model(body, raw_empty)
        family = _model_family(name)
        self._send_json(200, {
            "license": "test double: no license text",
            "modelfile": f"# Modelfile generated by the Ollama API test double\nFROM {name}\n",
            "parameters": 'stop                           "<|endoftext|>"',
            **_show_template(name),
            "details": d.model_details(name),
            "model_info": {
                "general.architecture": family,
                "general.parameter_count": 7615616512,
                f"{family}.context_length": d.context_length(name),
            },
            "capabilities": d.capabilities(name),
            "modified_at": _local_iso(d._modified.get(name, time.time())),
        })

    def _delete(self, body: dict[str, Any], raw_empty: bool = False) -> None:
        name = self._require_model(body, raw_empty)
        if not self.double.remove_model(name):
            raise _HTTPError(404, f"model '{name}' not found")
        self._send_bytes(200, b"", "text/plain")

    def _pull(self, body: dict[str, Any], raw_empty: bool = False) -> None:
        d = self.double
        name = normalize_model_name(self._require_model(body, raw_empty))
        stream = body.get("stream", True) is not False
        ok = d.pullable is None or name in d.pullable
        lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        if ok:
            for layer in d._layers(name):
                digest, total = layer["digest"], layer["size"]
                lines.append({"status": f"pulling {digest[7:19]}", "digest": digest,
                              "total": total})
                for i in range(1, max(1, d.pull_steps) + 1):
                    lines.append({"status": f"pulling {digest[7:19]}", "digest": digest,
                                  "total": total, "completed": total * i // max(1, d.pull_steps)})
            lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                      {"status": "success"}]
        if not stream:
            self._sleep(d.pull_delay * len(lines))
            if not ok:
                raise _HTTPError(500, ERR_PULL_MANIFEST)
            d.add_model(name)
            self._send_json(200, {"status": "success"})
            return
        self._start_stream()
        for line in lines:
            if line["status"] == "success":
                d.add_model(name)
            self._write_line(line)
            if d.pull_delay:
                self._sleep(d.pull_delay)
        if not ok:
            self._write_line({"error": ERR_PULL_MANIFEST})
        self._end_stream()

    # ---- generation
    def _options(self, body: dict[str, Any]) -> dict[str, Any]:
        opts = body.get("options")
        return opts if isinstance(opts, dict) else {}

    def _num_ctx(self, name: str, body: dict[str, Any]) -> int:
        d = self.double
        num_ctx = self._options(body).get("num_ctx")
        if not isinstance(num_ctx, int) or num_ctx <= 0:
            num_ctx = d.default_num_ctx
        return min(num_ctx, d.context_length(name))

    def _generate(self, body: dict[str, Any], raw_empty: bool = False) -> None:
        d = self.double
        name = self._known_model(body, raw_empty)
        num_ctx = self._num_ctx(name, body)
        keep_alive = body.get("keep_alive")
        prompt = body.get("prompt") or ""
        base = {"model": body.get("model", name)}
        if not prompt:
            unload = keep_alive is not None and _parse_keep_alive(keep_alive) == 0
            d._mark_loaded(name, num_ctx, keep_alive)
            self._send_json(200, {**base, "created_at": now_rfc3339(), "response": "",
                                  "done": True, "done_reason": "unload" if unload else "load"})
            return
        if body.get("raw"):
            self._with_slot(lambda: self._raw_reply(name, body, str(prompt), num_ctx))
            return
        d._mark_loaded(name, num_ctx, keep_alive)
        text = d.default_reply.content
        final = {**base, "created_at": now_rfc3339(), "response": "", "done": True,
                 "done_reason": "stop", "context": [1, 2, 3], "total_duration": 1_000_000,
                 "load_duration": 100_000,
                 "prompt_eval_count": _estimate_output_tokens(prompt, d.chars_per_token),
                 "prompt_eval_duration": 200_000,
                 "eval_count": _estimate_output_tokens(text, d.chars_per_token),
                 "eval_duration": 500_000}
        if body.get("stream", True) is False:
            final["response"] = text
            self._send_json(200, final)
            return
        self._start_stream()
        for piece in _split_words(text):
            self._write_line({**base, "created_at": now_rfc3339(), "response": piece,
                              "done": False})
        self._write_line(final)
        self._end_stream()

    def _chat(self, body: dict[str, Any], raw_empty: bool = False) -> None:
        d = self.double
        name = self._known_model(body, raw_empty)
        caps = d.capabilities(name)
        think = body.get("think")
        if think not in (None, False) and "thinking" not in caps:
            raise _HTTPError(400, f'"{body["model"]}" does not support thinking')
        if body.get("tools") and "tools" not in caps:
            raise _HTTPError(400, f'"{body["model"]}" does not support tools')
        messages = body.get("messages") or []
        num_ctx = self._num_ctx(name, body)
        keep_alive = body.get("keep_alive")
        base = {"model": body["model"]}
        if not messages:
            unload = keep_alive is not None and _parse_keep_alive(keep_alive) == 0
            d._mark_loaded(name, num_ctx, keep_alive)
            self._send_json(200, {**base, "created_at": now_rfc3339(),
                                  "message": {"role": "assistant", "content": ""},
                                  "done_reason": "unload" if unload else "load", "done": True})
            return
        self._with_slot(lambda: self._chat_reply(name, body, messages, num_ctx, keep_alive, think))

    def _with_slot(self, generate: Callable[[], None]) -> None:
        """Run one generation in a parallel slot (OLLAMA_NUM_PARALLEL), queueing for one."""
        d = self.double
        acquired = False
        if d._slots is not None:
            with d._lock:
                if d._waiting >= d.max_queue:
                    raise _HTTPError(503, ERR_QUEUE_FULL)
                d._waiting += 1
            try:
                while not d._slots.acquire(timeout=0.02):
                    self._sleep(0)
            finally:
                with d._lock:
                    d._waiting -= 1
            acquired = True
        try:
            generate()
        finally:
            if acquired and d._slots is not None:
                d._slots.release()

    def _raw_reply(self, name: str, body: dict[str, Any], prompt: str, num_ctx: int) -> None:
        """A raw /api/generate: the prompt is taken as is (its client rendered it); the
        scripted reply comes back as the text the model writes, tool calls in its format."""
        d = self.double
        t0 = time.monotonic_ns()
        reply = d._next_reply()
        ids = d.raw_tokens(name, prompt) if d.exact_counts or d.kv is not None else None
        prompt_tokens = (
            reply.prompt_eval_count if reply.prompt_eval_count is not None
            else len(ids) if ids is not None
            else max(1, len(prompt) // d.chars_per_token)
        )
        if prompt_tokens > num_ctx:
            if body.get("truncate", True) is False:
                raise _HTTPError(400, ERR_CONTEXT)
            with d._lock:
                d.truncated_prompts += 1
            prompt_tokens = num_ctx
        if reply.status != 200:
            self._sleep(reply.first_chunk_delay)
            raise _HTTPError(reply.status, reply.error or "test double: scripted error")
        d._mark_loaded(name, num_ctx, body.get("keep_alive"))
        text = native_answer(name, reply.content, reply.tool_calls)
        written = dataclasses.replace(reply, content=text, tool_calls=None, thinking=None)
        prefill_ns = None
        if ids is not None and d.kv is not None:  # the slot model: what no slot holds
            prefill_ns = self._prefill_time(name, ids, d.raw_tokens(name, text))
        turn = _Turn(
            base={"model": body["model"]}, t0=t0, prompt_tokens=prompt_tokens,
            prefill_ns=prefill_ns,
            answer=self._answer(written, body, False), raw=True,
        )
        if body.get("stream", True) is False:
            self._reply_whole(written, turn)
        else:
            self._reply_stream(written, turn)

    def _chat_reply(self, name: str, body: dict[str, Any], messages: list[Any], num_ctx: int,
                    keep_alive: Any, think: Any) -> None:
        d = self.double
        t0 = time.monotonic_ns()
        reply = d._next_reply()
        tools = body.get("tools")
        prompt_tokens = self._prompt_size(name, body, messages, reply, num_ctx)
        if reply.status != 200:
            self._sleep(reply.first_chunk_delay)
            raise _HTTPError(reply.status, reply.error or "test double: scripted error")
        d._mark_loaded(name, num_ctx, keep_alive)
        turn = _Turn(
            base={"model": body["model"]}, t0=t0, prompt_tokens=prompt_tokens,
            prefill_ns=self._prefill_ns(name, messages, tools, reply),
            answer=self._answer(reply, body, think),
        )
        if body.get("stream", True) is False:
            self._reply_whole(reply, turn)
        else:
            self._reply_stream(reply, turn)

    def _prompt_size(self, name: str, body: dict[str, Any], messages: list[Any], reply: Reply,
                     num_ctx: int) -> int:
        """The prompt's tokens, checked against the window (truncate defaults to true, like
        Ollama: then the oldest messages go, silently)."""
        tools = body.get("tools")
        if reply.prompt_eval_count is not None:
            prompt_tokens = reply.prompt_eval_count
        else:
            prompt_tokens = self.double.prompt_tokens(name, messages, tools)
        if prompt_tokens <= num_ctx:
            return prompt_tokens
        if body.get("truncate", True) is False:
            raise _HTTPError(400, ERR_CONTEXT)
        if reply.prompt_eval_count is not None:
            return prompt_tokens
        return self._truncate(name, messages, tools, num_ctx)

    def _prefill_ns(self, name: str, messages: list[Any], tools: Any, reply: Reply) -> int | None:
        """With the slot model on: how long prefilling what no slot holds takes, else None."""
        d = self.double
        if d.kv is None:
            return None
        ids = prompt_token_ids(name, messages, tools, d.chars_per_token)
        answer = prompt_token_ids(name, [{"role": "assistant", "content": reply.content}],
                                  None, d.chars_per_token)
        return self._prefill_time(name, ids, answer)

    def _prefill_time(self, name: str, ids: list[int], answer: list[int]) -> int | None:
        """With the slot model on: the prefill of what no slot holds, in ns; else None."""
        d = self.double
        if d.kv is None:
            return None
        with d._lock:
            prefilled = d.kv.serve(name, ids, answer)
        return max(int(prefilled / d.prefill_rate * 1e9), 1)

    def _answer(self, reply: Reply, body: dict[str, Any], think: Any) -> _Answer:
        """What the scripted reply says once ``options.num_predict`` and ``think`` apply."""
        chars_per_token = self.double.chars_per_token
        content = reply.content
        done_reason = reply.done_reason
        num_predict = self._options(body).get("num_predict")
        if (done_reason is None and isinstance(num_predict, int) and num_predict > 0
                and _estimate_output_tokens(content, chars_per_token) > num_predict):
            content = content[: num_predict * chars_per_token]
            done_reason = "length"
        pieces = (
            reply.content_pieces() if content == reply.content
            else Reply(content, chunks=reply.chunks).content_pieces()
        )
        thinking = reply.thinking if (reply.thinking and think is not False) else None
        tool_calls = self._tool_calls(reply.tool_calls) if reply.tool_calls else None
        out_text = (thinking or "") + content + (json.dumps(tool_calls) if tool_calls else "")
        eval_count = (
            reply.eval_count if reply.eval_count is not None
            else _estimate_output_tokens(out_text, chars_per_token)
        )
        return _Answer(content, pieces, thinking, tool_calls, done_reason or "stop", eval_count)

    def _reply_whole(self, reply: Reply, turn: _Turn) -> None:
        """``"stream": false``: one JSON body after the whole generation's time."""
        answer = turn.answer
        self._sleep(reply.first_chunk_delay + reply.chunk_delay * max(0, len(answer.pieces) - 1))
        while reply.hang:
            self._sleep(1.0)
        if reply.error is not None:
            raise _HTTPError(500, reply.error)
        t_first = time.monotonic_ns()
        extra: dict[str, Any] = {}
        if answer.thinking:
            extra["thinking"] = answer.thinking
        if answer.tool_calls:
            extra["tool_calls"] = answer.tool_calls
        with self.double._lock:
            self.double.completed_streams += 1
        self._send_json(200, turn.final(_message(answer.content, **extra), t_first))

    def _reply_stream(self, reply: Reply, turn: _Turn) -> None:
        """Streaming NDJSON: thinking, content and tool-call chunks, then the final one (or a
        scripted error line, raw lines, or a hang)."""
        self._sleep(reply.first_chunk_delay)  # prefill: no headers yet, like Ollama
        t_first = time.monotonic_ns()
        self._start_stream()
        if reply.raw_lines is not None:
            self._write_lines(reply.raw_lines, reply.chunk_delay)
            self._end_stream()
            return
        lines, error_at = _stream_messages(reply, turn.answer)
        self._write_lines(lines[:error_at], reply.chunk_delay, turn.chunk)
        if error_at is not None:
            self._sleep(reply.chunk_delay if error_at else 0)
            self._write_line({"error": reply.error})
            self._end_stream()
            return
        while reply.hang:
            self._sleep(reply.hang_interval)
            self._write_line(turn.chunk(_message(reply.hang_text)))
        self._sleep(reply.chunk_delay if lines else 0)
        self._write_line(turn.final(_message(""), t_first))
        with self.double._lock:
            self.double.completed_streams += 1
        self._end_stream()

    def _write_lines(self, lines: list[Any], delay: float,
                     render: Callable[[Any], Any] | None = None) -> None:
        """NDJSON lines ``delay`` seconds apart, each rendered (stamped) just before it goes."""
        for i, line in enumerate(lines):
            if i:
                self._sleep(delay)
            self._write_line(line if render is None else render(line))

    def _truncate(self, name: str, messages: list[Any], tools: Any, num_ctx: int) -> int:
        """Ollama's silent front truncation: drop oldest non-system messages, keep the last."""
        d = self.double
        kept = list(messages)
        while True:
            tokens = d.prompt_tokens(name, kept, tools)
            if tokens <= num_ctx:
                break
            idx = next((i for i, m in enumerate(kept[:-1])
                        if not (isinstance(m, dict) and m.get("role") == "system")), None)
            if idx is None:
                break
            kept.pop(idx)
        with d._lock:
            d.truncated_prompts += 1
        return min(tokens, num_ctx)

    def _tool_calls(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with_ids = version_tuple(self.double.version) >= (0, 12, 10)
        out = []
        for i, call in enumerate(calls):
            fn = call.get("function", call)
            entry: dict[str, Any] = {}
            if with_ids:
                entry["id"] = call.get("id") or _random_call_id()
            entry["function"] = {"index": fn.get("index", i), "name": fn["name"],
                                 "arguments": fn.get("arguments", {})}
            out.append(entry)
        return out


def _main_server_only() -> int:  # pragma: no cover - debugging aid
    with OllamaDouble(port=int(os.environ.get("PORT", "0")), log_stream=sys.stderr) as od:
        sys.stderr.write(f"Ollama API test double on {od.url}\n")
        with contextlib.suppress(KeyboardInterrupt):
            od.serve_forever()
    return 0
