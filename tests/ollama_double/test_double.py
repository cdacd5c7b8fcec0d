"""Tests OF the Ollama API test double, so that the double cannot be wrong silently."""

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devkit.ports import free_port
from ollama_double.archive import build_archive
from ollama_double.server import (
    ERR_CONTEXT,
    ERR_QUEUE_FULL,
    OllamaDouble,
    Reply,
    prompt_tokens_of,
)

MODEL = "qwen2.5-coder:7b"
REPO_DIR = Path(__file__).resolve().parents[2]
FINAL_FIELDS = {
    "model",
    "created_at",
    "message",
    "done",
    "done_reason",
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
}
USER = [{"role": "user", "content": "hi"}]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def od():
    with OllamaDouble(models=[MODEL, "llama3.2:1b"], thinking_models=["qwen3:8b"]) as double:
        yield double


def request(
    double: OllamaDouble, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", double.port, timeout=10)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def chat(double: OllamaDouble, **body: Any) -> tuple[int, dict[str, str], list[dict[str, Any]]]:
    body.setdefault("model", MODEL)
    body.setdefault("messages", USER)
    status, headers, data = request(double, "POST", "/api/chat", body)
    return status, headers, [json.loads(line) for line in data.splitlines() if line.strip()]


# --------------------------------------------------------------------------- management API


def test_root_version_tags_show_ps(od: OllamaDouble) -> None:
    assert od.url == f"http://127.0.0.1:{od.port}"
    assert request(od, "GET", "/")[2] == b"Ollama is running"
    status, headers, body = request(od, "HEAD", "/")
    assert (status, body, headers["content-length"]) == (200, b"", "17")
    assert json.loads(request(od, "GET", "/api/version")[2]) == {"version": "0.12.11"}

    tags = json.loads(request(od, "GET", "/api/tags")[2])["models"]
    assert [m["name"] for m in tags] == [MODEL, "llama3.2:1b"]
    entry = tags[0]
    assert set(entry) == {"name", "model", "modified_at", "size", "digest", "details"}
    assert re.fullmatch(r"[0-9a-f]{64}", entry["digest"])
    assert entry["details"]["family"] == "qwen2" and entry["details"]["format"] == "gguf"

    show = json.loads(request(od, "POST", "/api/show", {"model": MODEL})[2])
    assert show["capabilities"] == ["completion", "tools"]
    assert show["model_info"]["qwen2.context_length"] == 32768
    assert {"template", "details", "parameters", "modelfile"} <= set(show)
    status, _, body = request(od, "POST", "/api/show", {"model": "nope:1b"})
    assert (status, json.loads(body)) == (404, {"error": "model 'nope:1b' not found"})

    assert json.loads(request(od, "GET", "/api/ps")[2]) == {"models": []}
    chat(od, options={"num_ctx": 16384})
    ps = json.loads(request(od, "GET", "/api/ps")[2])["models"]
    assert [(m["name"], m["context_length"]) for m in ps] == [(MODEL, 16384)]
    assert {"expires_at", "size_vram", "digest", "details"} <= set(ps[0])
    assert request(od, "GET", "/api/nothing")[0] == 404


def test_generate_warmup_load_and_unload(od: OllamaDouble) -> None:
    status, _, body = request(od, "POST", "/api/generate", {"model": MODEL})
    out = json.loads(body)
    assert status == 200 and out["done"] is True and out["done_reason"] == "load"
    assert out["response"] == ""
    assert len(json.loads(request(od, "GET", "/api/ps")[2])["models"]) == 1
    out = json.loads(request(od, "POST", "/api/generate", {"model": MODEL, "keep_alive": 0})[2])
    assert out["done_reason"] == "unload"
    assert json.loads(request(od, "GET", "/api/ps")[2])["models"] == []


def test_pull_progress_and_tags_updated(od: OllamaDouble) -> None:
    status, headers, body = request(od, "POST", "/api/pull", {"model": "qwen3:8b"})
    assert status == 200 and headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(x) for x in body.splitlines()]
    statuses = [x["status"] for x in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layer = [x for x in lines if x["status"].startswith("pulling ") and "digest" in x]
    assert layer and all(x["status"] == f"pulling {x['digest'][7:19]}" for x in layer)
    completed = [
        x["completed"] for x in layer if x["digest"] == layer[0]["digest"] and "completed" in x
    ]
    assert completed == sorted(completed) and completed[-1] == layer[0]["total"]
    assert len(completed) >= 3
    names = [m["name"] for m in json.loads(request(od, "GET", "/api/tags")[2])["models"]]
    assert "qwen3:8b" in names

    out = json.loads(request(od, "POST", "/api/pull", {"model": "gemma3", "stream": False})[2])
    assert out == {"status": "success"} and od.has_model("gemma3:latest")


def test_pull_unknown_model_reports_error_line() -> None:
    with OllamaDouble(models=[], pullable=[MODEL]) as double:
        status, _, body = request(double, "POST", "/api/pull", {"model": "nope"})
        lines = [json.loads(x) for x in body.splitlines()]
        assert status == 200 and lines[-1] == {"error": "pull model manifest: file does not exist"}
        status, _, body = request(double, "POST", "/api/pull", {"model": "nope", "stream": False})
        assert status == 500 and "file does not exist" in json.loads(body)["error"]
        assert double.models == []


# --------------------------------------------------------------------------- /api/chat


def test_chat_streaming_shape_and_final_chunk(od: OllamaDouble) -> None:
    od.script(Reply("Hello there, world!", chunks=4, eval_count=7))
    status, headers, lines = chat(od, options={"num_ctx": 8192})
    assert status == 200
    assert headers["content-type"] == "application/x-ndjson"
    assert headers["transfer-encoding"] == "chunked"
    *chunks, final = lines
    assert len(chunks) == 4
    for c in chunks:
        assert set(c) == {"model", "created_at", "message", "done"}
        assert c["model"] == MODEL and c["done"] is False
        assert set(c["message"]) == {"role", "content"} and c["message"]["role"] == "assistant"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", c["created_at"])
    assert "".join(c["message"]["content"] for c in chunks) == "Hello there, world!"
    assert set(final) == FINAL_FIELDS
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert final["eval_count"] == 7
    # qwen2.5-coder's prompt for "hi", with its default SYSTEM, in Qwen's tokens: what Ollama
    # reports for qwen2.5 models (30)
    assert final["prompt_eval_count"] == prompt_tokens_of(MODEL, USER, None) == 30
    assert all(isinstance(final[k], int) and final[k] > 0 for k in FINAL_FIELDS if "dur" in k)


def test_chat_default_reply_and_recording(od: OllamaDouble) -> None:
    status, _, lines = chat(od, stream=False)
    assert status == 200 and lines[0]["message"]["content"] == "ok"
    od.script("first", Reply("second"))
    assert chat(od, stream=False)[2][0]["message"]["content"] == "first"
    assert chat(od, stream=False)[2][0]["message"]["content"] == "second"
    assert chat(od, stream=False)[2][0]["message"]["content"] == "ok"
    assert len(od.chat_requests) == 4 and od.chat_requests[0]["stream"] is False
    method, path, body, headers = od.requests[-1]
    assert (method, path, body["model"]) == ("POST", "/api/chat", MODEL)
    assert headers["Content-Type"] == "application/json"


def test_chat_non_stream(od: OllamaDouble) -> None:
    od.script(Reply("full answer", prompt_eval_count=1234, done_reason="length"))
    status, headers, lines = chat(od, stream=False)
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert len(lines) == 1
    out = lines[0]
    assert set(out) == FINAL_FIELDS
    assert out["message"] == {"role": "assistant", "content": "full answer"}
    assert (out["done_reason"], out["prompt_eval_count"]) == ("length", 1234)


def test_chat_tool_calls_whole_in_one_chunk(od: OllamaDouble) -> None:
    call = {"name": "Bash", "arguments": {"command": "ls -la", "timeout": 5}}
    od.script(Reply("", tool_calls=[call, {"name": "Read", "arguments": {"path": "/x"}}]))
    tools = [{"type": "function", "function": {"name": "Bash", "parameters": {}}}]
    _, _, lines = chat(od, tools=tools)
    with_calls = [x for x in lines if x["message"].get("tool_calls")]
    assert len(with_calls) == 1 and with_calls[0]["done"] is False
    calls = with_calls[0]["message"]["tool_calls"]
    assert re.fullmatch(r"call_[a-z0-9]{8}", calls[0]["id"])
    assert calls[0]["function"] == {"index": 0, "name": "Bash", "arguments": call["arguments"]}
    assert calls[1]["function"]["index"] == 1 and calls[1]["id"] != calls[0]["id"]
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"

    od.script(Reply("", tool_calls=[call]))
    out = chat(od, tools=tools, stream=False)[2][0]
    assert out["message"]["tool_calls"][0]["function"]["arguments"] == call["arguments"]


def test_tool_call_ids_absent_before_0_12_10() -> None:
    with OllamaDouble(models=[MODEL], version="0.12.6") as double:
        double.script(Reply("", tool_calls=[{"name": "f", "arguments": {}}]))
        calls = chat(double, stream=False)[2][0]["message"]["tool_calls"]
        assert calls == [{"function": {"index": 0, "name": "f", "arguments": {}}}]


def test_thinking_model_streams_thinking(od: OllamaDouble) -> None:
    od.add_model("qwen3:8b")
    od.script(Reply("answer", thinking="let me think"))
    _, _, lines = chat(od, model="qwen3:8b", think=True)
    thinking = "".join(x["message"].get("thinking", "") for x in lines)
    assert thinking == "let me think"
    assert "".join(x["message"]["content"] for x in lines) == "answer"


@pytest.mark.parametrize(
    ("body", "raw", "status", "error"),
    [
        ({"model": "nope:7b", "messages": USER}, None, 404, "model 'nope:7b' not found"),
        ({"messages": USER}, None, 400, "model is required"),
        (None, b"{not json", 400, None),
        (None, b"", 400, "missing request body"),
        (
            {"model": MODEL, "messages": USER, "think": True},
            None,
            400,
            '"qwen2.5-coder:7b" does not support thinking',
        ),
        (
            {"model": MODEL, "messages": USER, "truncate": False, "options": {"num_ctx": 10}},
            None,
            400,
            ERR_CONTEXT,
        ),
    ],
)
def test_chat_error_bodies(
    od: OllamaDouble, body: Any, raw: bytes | None, status: int, error: str | None
) -> None:
    got_status, headers, data = request(od, "POST", "/api/chat", body, raw=raw)
    assert got_status == status
    assert headers["content-type"].startswith("application/json")
    payload = json.loads(data)
    assert set(payload) == {"error"}
    if error is not None:
        assert payload["error"] == error


def test_tools_on_model_without_tools_capability() -> None:
    with OllamaDouble(models=[MODEL, "gemma3:1b"], tools_models=[MODEL]) as double:
        tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        status, _, lines = chat(double, model="gemma3:1b", tools=tools)
        assert (status, lines) == (400, [{"error": '"gemma3:1b" does not support tools'}])
        assert chat(double, tools=tools)[0] == 200


def test_context_length_scripted_and_silent_truncation(od: OllamaDouble) -> None:
    od.script(Reply(prompt_eval_count=40000))
    status, _, lines = chat(od, truncate=False, options={"num_ctx": 32768})
    assert (status, lines[0]) == (400, {"error": ERR_CONTEXT})
    # num_ctx above the model's trained context is capped at 32768
    od.script(Reply(prompt_eval_count=32769))
    assert chat(od, truncate=False, options={"num_ctx": 65536})[0] == 400
    # default truncate=true: no error, old messages silently dropped, small prompt_eval_count
    big = [{"role": "system", "content": "sys"}] + [
        {"role": "user", "content": "x" * 300} for _ in range(20)
    ]
    status, _, lines = chat(od, messages=big, options={"num_ctx": 500}, stream=False)
    assert status == 200 and lines[0]["prompt_eval_count"] <= 500
    assert od.truncated_prompts == 1


def test_num_predict_gives_length(od: OllamaDouble) -> None:
    od.script(Reply("word " * 100))
    out = chat(od, options={"num_predict": 5}, stream=False)[2][0]
    assert out["done_reason"] == "length" and len(out["message"]["content"]) <= 15


def test_scripted_http_errors(od: OllamaDouble) -> None:
    od.script(Reply.http_error(503, ERR_QUEUE_FULL), Reply.http_error(500, "boom"), "after")
    assert chat(od)[::2] == (503, [{"error": ERR_QUEUE_FULL}])
    assert chat(od, stream=False)[::2] == (500, [{"error": "boom"}])
    assert chat(od, stream=False)[2][0]["message"]["content"] == "after"


def test_queue_full_gives_503() -> None:
    with OllamaDouble(models=[MODEL], num_parallel=1, max_queue=1) as double:
        double.script(Reply(first_chunk_delay=1.0), Reply())
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(chat(double)[0])) for _ in range(2)
        ]
        for t in threads:
            t.start()
            time.sleep(0.2)  # first holds the slot, second waits in the queue
        status, _, lines = chat(double)
        for t in threads:
            t.join()
        assert (status, lines) == (503, [{"error": ERR_QUEUE_FULL}])
        assert sorted(results) == [200, 200]


def test_mid_stream_error_line_keeps_status_200(od: OllamaDouble) -> None:
    od.script(
        Reply.stream_error(
            "an error was encountered while running the model",
            after=2,
            content="one two three four",
        )
    )
    status, _, lines = chat(od)
    assert status == 200
    assert [x["message"]["content"] for x in lines[:2]] == ["one", " two"]
    assert lines[2] == {"error": "an error was encountered while running the model"}
    assert len(lines) == 3 and not any(x.get("done") for x in lines)
    od.script(Reply.stream_error("boom", after=1))
    status, _, lines = chat(od, stream=False)
    assert (status, lines) == (500, [{"error": "boom"}])


def test_prefill_delay_holds_headers(od: OllamaDouble) -> None:
    od.script(Reply("a b", first_chunk_delay=0.3, chunk_delay=0.1))
    t0 = time.monotonic()
    status, _, lines = chat(od)
    assert status == 200 and time.monotonic() - t0 >= 0.4
    assert lines[-1]["prompt_eval_duration"] >= 300_000_000


def _open_stream(double: OllamaDouble, body: dict[str, Any]) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", double.port), timeout=5)
    data = json.dumps(body).encode()
    sock.sendall(
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
    )
    return sock


def test_disconnect_mid_stream_is_detected(od: OllamaDouble) -> None:
    od.script(Reply("start", hang=True, hang_interval=0.02))
    sock = _open_stream(od, {"model": MODEL, "messages": USER})
    received = b""
    while received.count(b'"done": false') < 3:
        received += sock.recv(4096)
    assert b"200 OK" in received
    sock.close()
    assert od.disconnected.wait(3)
    assert od.cancelled_streams == 1 and od.completed_streams == 0


def test_disconnect_during_prefill_is_detected(od: OllamaDouble) -> None:
    od.script(Reply("never", first_chunk_delay=30))
    sock = _open_stream(od, {"model": MODEL, "messages": USER, "stream": False})
    time.sleep(0.2)
    assert not od.disconnected.is_set()
    t0 = time.monotonic()
    sock.close()
    assert od.wait_for_disconnect(3) and time.monotonic() - t0 < 1.0
    assert od.cancelled_streams == 1


def test_normal_stream_is_not_a_disconnect(od: OllamaDouble) -> None:
    chat(od)
    chat(od, stream=False)
    assert not od.disconnected.is_set() and od.cancelled_streams == 0
    assert od.completed_streams == 2


def test_keep_alive_connection_reuse(od: OllamaDouble) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", od.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("POST", "/api/chat", body=json.dumps({"model": MODEL, "messages": USER}))
            resp = conn.getresponse()
            lines = resp.read().splitlines()
            assert json.loads(lines[-1])["done"] is True
    finally:
        conn.close()


# --------------------------------------------------------------------------- CLI


def _cli(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ollama_double", *args],
        env=env,
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=30,
        **kw,
    )


def _wait_up(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not start")


class _Serve:
    def __init__(self, cmd: list[str], env: dict[str, str], port: int) -> None:
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=REPO_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.port = port
        self.log = ""

    def __enter__(self) -> "_Serve":
        _wait_up(self.port, self.proc)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=10)
        self.log = out + err
        assert self.proc.returncode == 0, self.log


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.update(
        OLLAMA_HOST=f"127.0.0.1:{free_port()}",
        OLLAMA_MODELS=str(tmp_path / "models"),
        PYTHONPATH=str(REPO_DIR),
        HOME=str(tmp_path),
    )
    return env


def test_cli_without_server(cli_env: dict[str, str]) -> None:
    out = _cli(["-v"], cli_env)
    assert out.returncode == 0
    assert out.stdout.splitlines() == [
        "Warning: could not connect to a running Ollama instance",
        "Warning: client version is 0.12.11",
    ]
    for args in (["pull", MODEL], ["list"], ["ps"]):
        out = _cli(args, cli_env)
        assert out.returncode == 1
        assert out.stderr.strip() == (
            "Error: could not connect to ollama server, run 'ollama serve' to start it"
        )


def test_cli_serve_pull_list_restart(cli_env: dict[str, str]) -> None:
    port = int(cli_env["OLLAMA_HOST"].rsplit(":", 1)[1])
    serve_cmd = [sys.executable, "-m", "ollama_double", "serve"]
    with _Serve(serve_cmd, cli_env, port) as srv:
        assert _cli(["--version"], cli_env).stdout == "ollama version is 0.12.11\n"
        empty = _cli(["list"], cli_env)
        assert empty.returncode == 0 and empty.stdout.split() == ["NAME", "ID", "SIZE", "MODIFIED"]
        pulled = _cli(["pull", MODEL], cli_env)
        assert pulled.returncode == 0, pulled.stderr
        assert pulled.stderr.splitlines()[0] == "pulling manifest"
        assert pulled.stderr.splitlines()[-1] == "success"
        assert "verifying sha256 digest" in pulled.stderr
        listed = _cli(["list"], cli_env).stdout.splitlines()
        assert re.match(r"qwen2\.5-coder:7b\s+[0-9a-f]{12}\s+4\.7 GB\s+", listed[1])
        assert _cli(["run", MODEL, "hi"], cli_env).stdout.strip() == "ok"
        ps = _cli(["ps"], cli_env).stdout
        assert "CONTEXT" in ps and MODEL in ps
    assert f"Listening on 127.0.0.1:{port} (version 0.12.11)" in srv.log
    assert "TEST DOUBLE" in srv.log
    manifest = Path(
        cli_env["OLLAMA_MODELS"], "manifests/registry.ollama.ai/library", "qwen2.5-coder/7b"
    )
    assert json.loads(manifest.read_text())["schemaVersion"] == 2

    with _Serve(serve_cmd, cli_env, port):  # models survive a restart
        assert MODEL in _cli(["list"], cli_env).stdout
        busy = _cli(["serve"], cli_env)
        assert busy.returncode == 1 and "address already in use" in busy.stderr


# --------------------------------------------------------------------------- archive


def test_archive_reproducible_and_runnable(tmp_path: Path) -> None:
    path1, sha1 = build_archive(str(tmp_path / "a"), "0.12.11")
    path2, sha2 = build_archive(str(tmp_path / "b"), "0.12.11")
    _, sha3 = build_archive(str(tmp_path / "c"), "0.13.5")
    assert path1.endswith("ollama-linux-amd64.tar.zst") and shutil.which("zstd")
    assert sha1 == sha2 != sha3
    assert Path(path1).read_bytes() == Path(path2).read_bytes()
    assert hashlib.sha256(Path(path1).read_bytes()).hexdigest() == sha1
    sums = (tmp_path / "a" / "sha256sum.txt").read_text()
    assert sums == f"{sha1}  ./ollama-linux-amd64.tar.zst\n"

    dest = tmp_path / "usr"
    dest.mkdir()
    raw = subprocess.run(["zstd", "-dc", path1], capture_output=True, check=True).stdout
    tar_path = tmp_path / "x.tar"
    tar_path.write_bytes(raw)
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        assert {m.mtime for m in tar.getmembers()} == {1704067200}
        assert {(m.uid, m.gid) for m in tar.getmembers()} == {(0, 0)}
    assert names == ["bin/ollama", "lib/ollama", "lib/ollama/README.txt"]
    subprocess.run(["tar", "-C", str(dest), "-xf", str(tar_path)], check=True)
    binary = dest / "bin" / "ollama"
    assert os.access(binary, os.X_OK)
    assert binary.read_text().startswith("#!/usr/bin/env python3\n")
    assert "test double" in (dest / "lib/ollama/README.txt").read_text().lower()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "PYTHON"))}
    env.update(
        OLLAMA_HOST=f"127.0.0.1:{port}", OLLAMA_MODELS=str(tmp_path / "m"), HOME=str(tmp_path)
    )
    out = subprocess.run(
        [str(binary), "-v"], env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert out.returncode == 0 and "Warning: client version is 0.12.11" in out.stdout
    with _Serve([str(binary), "serve"], env, port):
        out = subprocess.run(
            [str(binary), "-v"], env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path
        )
        assert out.stdout == "ollama version is 0.12.11\n"


def test_script_endpoint_queues_replies_from_another_process() -> None:
    import urllib.error
    import urllib.request

    with OllamaDouble() as od:
        body = json.dumps({"replies": [{"content": "scripted remotely"}, {"content": "second"}]})
        request = urllib.request.Request(
            od.url + "/api/_double/script", data=body.encode(), method="POST"
        )
        with urllib.request.urlopen(request) as response:
            assert json.load(response) == {"queued": 2}
        chat = json.dumps(
            {
                "model": "qwen2.5-coder:7b",
                "stream": False,
                "messages": [{"role": "user", "content": "x"}],
            }
        ).encode()
        with urllib.request.urlopen(urllib.request.Request(od.url + "/api/chat", data=chat)) as r:
            assert json.load(r)["message"]["content"] == "scripted remotely"
        bad = urllib.request.Request(
            od.url + "/api/_double/script", data=b'{"replies": [{"nope": 1}]}', method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(bad)
        assert caught.value.code == 400
