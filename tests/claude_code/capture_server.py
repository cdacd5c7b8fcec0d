"""Tiny stdlib-only fake Anthropic API that records every request Claude Code sends.

Each request is written to ``<log_dir>/NNNN.json`` as
``{"seq", "time", "method", "path", "headers", "body_size", "body"}`` (``body`` is the parsed
JSON when possible, else the raw text).

Answers:
- ``HEAD``/``GET`` on any path other than ``/v1/models*``: 200 (start-up probes such as ``HEAD /``
  and ``HEAD /api/hello``).
- ``GET /v1/models``: the Anthropic listing shape with one ``claude-sonnet-4-5`` entry.
- ``POST /v1/messages/count_tokens``: ``{"input_tokens": 100}``.
- ``POST /v1/messages``: a text answer ("Hello from capture"), streamed as SSE when
  ``stream`` is true, else a JSON Message.

Modes (``--mode``):
- ``text`` (default): every /v1/messages answer is text.
- ``tool``: the first /v1/messages answer is a ``tool_use`` block calling ``Write`` with
  ``{"file_path": <write_path>, "content": "hi"}`` (or ``--tool-name``/``--tool-input``);
  every later one is text.
- ``too_long``: every /v1/messages answer is 400 "prompt is too long: ..." (to observe the
  client's reaction).
- ``tool_too_long``: call 1 is the ``Write`` tool_use, call 2 is the 400 "prompt is too long",
  later calls are text (shows how the client compacts after an overflow mid-conversation).

Run standalone: ``python capture_server.py --log-dir /tmp/cap --port 0 --mode tool
--write-path /tmp/x/hello.txt``; the chosen port is printed on stdout as ``PORT <n>``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

TEXT_ANSWER = "Hello from capture"
MODEL_ID = "claude-sonnet-4-5"


class CaptureServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        log_dir: str,
        port: int = 0,
        mode: str = "text",
        write_path: str | None = None,
        tool_name: str = "Write",
        tool_input: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", port), CaptureHandler)
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        self.mode = mode
        self.write_path = write_path
        self.tool_name = tool_name
        self.tool_input = tool_input
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.messages_calls = 0
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, entry: dict[str, Any]) -> int:
        with self._lock:
            seq = next(self._seq)
            entry = {"seq": seq, **entry}
            path = os.path.join(self.log_dir, f"{seq:04d}.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(entry, fh, indent=2, ensure_ascii=False)
        return seq

    def next_messages_call(self) -> int:
        with self._lock:
            self.messages_calls += 1
            return self.messages_calls

    # Convenience for tests -------------------------------------------------------------
    def start_background(self) -> CaptureServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for name in sorted(os.listdir(self.log_dir)):
            if name.endswith(".json"):
                with open(os.path.join(self.log_dir, name), encoding="utf-8") as fh:
                    out.append(json.load(fh))
        return out


def _msg_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


class CaptureHandler(BaseHTTPRequestHandler):
    server: CaptureServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep stderr quiet; everything is in the log dir

    # Recording ---------------------------------------------------------------------------
    def _read_and_record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self.server.record(
            {
                "time": time.time(),
                "method": self.command,
                "path": self.path,
                "headers": {k: v for k, v in self.headers.items()},
                "body_size": len(raw),
                "body": body,
            }
        )
        return body

    # Responses ---------------------------------------------------------------------------
    def _send_json(self, status: int, obj: Any, head_only: bool = False) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def _probe(self, head_only: bool) -> None:
        route = urlsplit(self.path).path
        if route.rstrip("/") == "/v1/models":
            listing = {
                "data": [
                    {
                        "type": "model",
                        "id": MODEL_ID,
                        "display_name": "x",
                        "created_at": "2025-01-01T00:00:00Z",
                    }
                ],
                "has_more": False,
                "first_id": MODEL_ID,
                "last_id": MODEL_ID,
            }
            self._send_json(200, listing, head_only)
        elif route.startswith("/v1/models/"):
            model = route.rsplit("/", 1)[-1]
            entry = {
                "type": "model",
                "id": model,
                "display_name": "x",
                "created_at": "2025-01-01T00:00:00Z",
            }
            self._send_json(200, entry, head_only)
        else:
            self._send_json(200, {"ok": True}, head_only)

    def do_HEAD(self) -> None:  # noqa: N802
        self._read_and_record()
        self._probe(head_only=True)

    def do_GET(self) -> None:  # noqa: N802
        self._read_and_record()
        self._probe(head_only=False)

    def do_POST(self) -> None:  # noqa: N802
        body = self._read_and_record()
        route = urlsplit(self.path).path
        if not isinstance(body, dict):
            body = {}
        if route == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": 100})
            return
        if route != "/v1/messages":
            err = {"type": "not_found_error", "message": f"no route {route}"}
            self._send_json(404, {"type": "error", "error": err})
            return

        call = self.server.next_messages_call()
        if self.server.mode == "too_long" or (self.server.mode == "tool_too_long" and call == 2):
            err = {
                "type": "invalid_request_error",
                "message": "prompt is too long: 250000 tokens > 200000 maximum",
            }
            self._send_json(400, {"type": "error", "error": err, "request_id": "req_toolong"})
            return

        model = str(body.get("model") or MODEL_ID)
        if self.server.mode in ("tool", "tool_too_long") and call == 1:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": "toolu_" + uuid.uuid4().hex[:24],
                "name": self.server.tool_name,
                "input": self.server.tool_input
                or {"file_path": self.server.write_path or "/tmp/capture_hi.txt", "content": "hi"},
            }
            stop_reason = "tool_use"
        else:
            block = {"type": "text", "text": TEXT_ANSWER}
            stop_reason = "end_turn"

        if body.get("stream"):
            self._stream(model, block, stop_reason)
        else:
            message = {
                "id": _msg_id(),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [block],
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": 100, "output_tokens": 10},
            }
            self._send_json(200, message)

    def _stream(self, model: str, block: dict[str, Any], stop_reason: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
        self.end_headers()
        self.close_connection = True

        def event(name: str, data: dict[str, Any]) -> None:
            payload = f"event: {name}\ndata: {json.dumps(data)}\n\n"
            self.wfile.write(payload.encode())
            self.wfile.flush()

        event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": _msg_id(),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 100, "output_tokens": 1},
                },
            },
        )
        event("ping", {"type": "ping"})
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": start},
        )
        event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        event("content_block_stop", {"type": "content_block_stop", "index": 0})
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"input_tokens": 100, "output_tokens": 10},
            },
        )
        event("message_stop", {"type": "message_stop"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--mode", choices=["text", "tool", "too_long", "tool_too_long"], default="text"
    )
    parser.add_argument("--write-path", default=None)
    parser.add_argument("--tool-name", default="Write", help="tool of the first tool_use answer")
    parser.add_argument("--tool-input", default=None, help="JSON input of that tool_use")
    args = parser.parse_args(argv)
    tool_input = json.loads(args.tool_input) if args.tool_input else None
    server = CaptureServer(
        args.log_dir, args.port, args.mode, args.write_path, args.tool_name, tool_input
    )
    print(f"PORT {server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
