"""Check ollama_double's reproduction of Ollama's prompt against Ollama's own code, byte for byte.

main.go beside this file re-declares Ollama's template types and `collate` (ollama
template/template.go, api/types.go at v0.33.0-rc2) without dependencies and renders a Go
template for an /api/chat body with Go's text/template, or runs a port of the built-in
qwen3-coder renderer (model/renderers/qwen3coder.go). This script renders every captured
Claude Code request (tests/fixtures/claude_code) both ways and reports any difference.

    apt-get install golang-go && (cd devkit/ollama_render && go build -o gorender .)
    .venv/bin/python devkit/ollama_render/compare.py [qwen2.5-coder|qwen2.5|qwen3-coder]

A developer check (Go is not needed by the tests): run it after changing
ollama_double/qwen_template.py or qwen3coder_renderer.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ollama_double import qwen_template  # noqa: E402
from ollama_double.qwen3coder_renderer import Qwen3CoderRenderer  # noqa: E402
from proxy_app.api.anthropic import CountTokensRequest, MessagesRequest  # noqa: E402
from proxy_app.engines import chat_template  # noqa: E402
from proxy_app.translate import to_ollama_request  # noqa: E402

BINARY = Path(__file__).parent / "gorender"


def main() -> int:
    wanted = sys.argv[1] if len(sys.argv) > 1 else "qwen2.5-coder"
    renderers = {t.name: t for t in chat_template.TEMPLATES}
    renderers["qwen3-coder"] = Qwen3CoderRenderer()  # type: ignore[assignment]
    template = renderers[wanted]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        source, body = Path(tmp) / "template.gotmpl", Path(tmp) / "body.json"
        source.write_text(
            f"renderer:{wanted}" if wanted == "qwen3-coder" else renderers[wanted].source()
        )
        for fixture in sorted((ROOT / "tests" / "fixtures" / "claude_code").glob("*request*.json")):
            data = json.loads(fixture.read_text())
            kind = MessagesRequest if "max_tokens" in data else CountTokensRequest
            payload = to_ollama_request(
                kind.model_validate(data), model="m", num_ctx=32768, keep_alive="5m", think=False
            ).payload
            body.write_text(json.dumps(payload))
            for system in ("", "You are Qwen."):
                go = subprocess.run(
                    [str(BINARY), str(source), str(body), system],
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                tools = payload.get("tools") or []
                if isinstance(template, chat_template.QwenTemplate):
                    ours = qwen_template.render(
                        template, payload["messages"], tools, default_system=system
                    )
                else:
                    head, pieces = template.around_tools(
                        payload["messages"], has_tools=bool(tools), default_system=system
                    )
                    ours = head + (template.tools(tools) if tools else "") + "".join(pieces)
                same = go == ours
                failures += not same
                verdict = "same" if same else "DIFFERENT"
                sys.stdout.write(f"{fixture.name} system={system!r}: {verdict}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
