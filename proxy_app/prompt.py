"""`python -m proxy_app.prompt [--model NAME] < request.json`: the prompt a model would read.

Prints on stdout exactly the text proxy_app sends the model for an Anthropic Messages request
body (nothing else), and its token count on stderr. Offline: the family comes from the model
name (default: PROXY_DEFAULT_MODEL, else the deploy's qwen2.5-coder:7b); no Ollama is asked.
A model whose family proxy_app does not render goes to Ollama's /api/chat instead, where Ollama
builds the prompt: that is said on stderr, with exit status 3. A body that is not a valid
request is exit status 2, with the reason.
"""

from __future__ import annotations

import argparse
import sys

from proxy_app import vocab
from proxy_app.api.anthropic import CountTokensRequest, parse_body
from proxy_app.config import Settings
from proxy_app.errors import ProxyError
from proxy_app.families import family_named, render
from proxy_app.translate import to_ollama_request

NOT_RENDERED = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proxy_app.prompt",
        description="Print the prompt the model reads for an Anthropic request body (stdin).",
    )
    parser.add_argument("--model", help="the Ollama model (default: PROXY_DEFAULT_MODEL)")
    args = parser.parse_args(argv)
    settings = Settings()
    model = args.model or settings.default_model
    family = family_named(model)
    if family is None:
        sys.stderr.write(
            f"{model}: proxy_app does not render this family's prompt; it goes to Ollama's "
            "/api/chat and Ollama's template builds it (known: qwen2.5*, qwen3-coder*).\n"
        )
        return NOT_RENDERED
    try:
        request = parse_body(sys.stdin.buffer.read(), CountTokensRequest)
        payload = to_ollama_request(
            request, model=model, num_ctx=settings.num_ctx_for(model), keep_alive="", think=False
        ).payload
    except ProxyError as exc:
        sys.stderr.write(f"the request is not valid: {exc.message}\n")
        return 2
    prompt = render(family, payload["messages"], payload.get("tools") or [])
    encoding = vocab.vocabulary_for(family.vocabulary)
    sys.stdout.write(prompt)
    sys.stdout.flush()
    count = vocab.count(encoding, prompt) if encoding is not None else 0
    sys.stderr.write(f"{count} tokens ({family.name} template, {model})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
