"""The Ollama API test double's HTTP handler: Ollama's routes over HTTP/1.1 with keep-alive
and chunked NDJSON streaming.

It must stay valid on Python 3.10 and 3.11 with only the standard library, without
``from __future__`` or relative imports outside its marked import block: ``archive.py``
concatenates the double's modules into the single-file stand-in ``bin/ollama``.
"""

import contextlib
import dataclasses
import json
import select
import socket
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

# --- double-import-begin (stripped when building the single-file bin/ollama)
from .errors import ERR_CONTEXT, ERR_PULL_MANIFEST, ERR_QUEUE_FULL, _ClientGone, _HTTPError
from .models import (
    DOUBLE_SCRIPT_PATH,
    _estimate_output_tokens,
    _local_iso,
    _model_family,
    _parse_keep_alive,
    _random_call_id,
    _show_template,
    _split_words,
    native_answer,
    normalize_model_name,
    now_rfc3339,
    prompt_token_ids,
    version_tuple,
)
from .scripting import RecordedRequest, Reply
from .stream import _Answer, _message, _stream_messages, _Turn

if TYPE_CHECKING:
    from .server import OllamaDouble
# --- double-import-end


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler (keep-alive, chunked NDJSON streaming) for :class:`OllamaDouble`."""

    # Go's net/http sets TCP_NODELAY on every connection, as Ollama's server does.
    disable_nagle_algorithm = True

    protocol_version = "HTTP/1.1"
    double: "OllamaDouble"
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
