"""Regenerate tests/fixtures/claude_code/*.json by driving the pinned Claude Code CLI against
the capture server.  Run from the repo root:  .venv/bin/python tests/claude_code/make_fixtures.py

Sanitising: auth header values become "REDACTED", the per-run temp directories become
/tmp/cc-work and /tmp/cc-home, session ids become a fixed UUID; nothing else is changed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from capture_server import CaptureServer  # noqa: E402
from cli import REPO_ROOT, run_claude  # noqa: E402

FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures", "claude_code")
TOKEN = "tok-fixture-secret"
QWEN = "qwen2.5-coder:7b"
QWEN_ENV = {
    "ANTHROPIC_MODEL": QWEN,
    "ANTHROPIC_DEFAULT_SONNET_MODEL": QWEN,
    "ANTHROPIC_DEFAULT_OPUS_MODEL": QWEN,
    "ANTHROPIC_DEFAULT_HAIKU_MODEL": QWEN,
}
FIXED_SESSION = "00000000-0000-4000-8000-000000000000"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SECRET_HEADERS = {"authorization", "x-api-key"}


def capture(
    mode: str,
    prompt: str,
    *,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
    tool_name: str = "Write",
    tool_input: dict[str, Any] | None = None,
    setup: Any = None,
) -> tuple[list[dict[str, Any]], str, str]:
    log_dir = tempfile.mkdtemp(prefix="cc-log-")
    work = tempfile.mkdtemp(prefix="cc-work-")
    if setup:
        setup(work)
    server = CaptureServer(
        log_dir,
        0,
        mode,
        os.path.join(work, "hello.txt"),
        tool_name,
        tool_input(work) if callable(tool_input) else tool_input,
    )
    server.start_background()
    try:
        proc = run_claude(prompt, server.base_url, TOKEN, work, extra_env, extra_args, 120)
        if proc.returncode != 0 and mode != "too_long":
            raise RuntimeError(f"claude failed: {proc.returncode} {proc.stdout} {proc.stderr}")
        return server.records(), work, proc.stdout
    finally:
        server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def sanitize(obj: Any, work: str) -> Any:
    text = json.dumps(obj, ensure_ascii=False)
    text = text.replace(os.path.realpath(work), "/tmp/cc-work").replace(work, "/tmp/cc-work")
    text = re.sub(r"/tmp/claude-home-[A-Za-z0-9_]+", "/tmp/cc-home", text)
    text = re.sub(r"-tmp-cc-work-[A-Za-z0-9_]+", "-tmp-cc-work", text)
    text = UUID_RE.sub(FIXED_SESSION, text)
    text = text.replace(TOKEN, "REDACTED")
    return json.loads(text)


def headers(rec: dict[str, Any], work: str) -> dict[str, str]:
    out = {}
    for k, v in rec["headers"].items():
        if k.lower() in SECRET_HEADERS:
            v = "Bearer REDACTED" if v.lower().startswith("bearer ") else "REDACTED"
        out[k] = v
    out.pop("Host", None)
    out["Content-Length"] = "<varies>"
    return sanitize(out, work)


def posts(records: list[dict[str, Any]], route: str) -> list[dict[str, Any]]:
    return [r for r in records if r["method"] == "POST" and r["path"].split("?")[0] == route]


def save(name: str, obj: Any) -> None:
    path = os.path.join(FIXTURES, name)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def write_big_file(work: str) -> None:
    with open(os.path.join(work, "big.txt"), "w", encoding="utf-8") as fh:
        for i in range(1800):
            fh.write(f"line {i} alpha beta gamma delta epsilon zeta eta theta iota kappa lambda\n")


def main() -> None:
    os.makedirs(FIXTURES, exist_ok=True)

    recs, work, _ = capture("text", "say hi")
    msgs = posts(recs, "/v1/messages")
    save("first_request.json", sanitize(msgs[0]["body"], work))
    save("headers.json", headers(msgs[0], work))

    recs, work, _ = capture("text", "say hi", extra_env=QWEN_ENV)
    save("first_request_qwen.json", sanitize(posts(recs, "/v1/messages")[0]["body"], work))

    recs, work, _ = capture("tool", "write hi to hello.txt")
    msgs = posts(recs, "/v1/messages")
    save("tool_result_request.json", sanitize(msgs[1]["body"], work))

    recs, work, _ = capture(
        "tool",
        "read big.txt",
        tool_name="Read",
        setup=write_big_file,
        tool_input=lambda w: {"file_path": os.path.join(w, "big.txt")},
    )
    counts = posts(recs, "/v1/messages/count_tokens")
    if counts:
        save("count_tokens_request.json", sanitize(counts[0]["body"], work))
        save("count_tokens_headers.json", headers(counts[0], work))

    recs, work, _ = capture("tool_too_long", "write hi to hello.txt")
    msgs = posts(recs, "/v1/messages")
    if len(msgs) >= 3:
        save("compaction_request.json", sanitize(msgs[2]["body"], work))
        save("after_compaction_request.json", sanitize(msgs[-1]["body"], work))


if __name__ == "__main__":
    main()
