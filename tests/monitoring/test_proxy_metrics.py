"""Every proxy_app series the alert rules read is one proxy_app exports."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import yaml

from ollama_double.server import OllamaDouble, Reply
from tests.conftest import API_KEY, LiveProxy

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"


def test_the_rules_read_only_series_proxy_app_exports(
    proxy: LiveProxy, double: OllamaDouble
) -> None:
    double.script(Reply("an answer in a few words"))
    body = {"model": "claude-sonnet-5", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    response = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": API_KEY})
    assert response.status_code == 200
    exported = httpx.get(f"{proxy.url}/metrics").text
    rules = yaml.safe_load((MONITORING / "rules.yml").read_text())
    exprs = " ".join(rule["expr"] for group in rules["groups"] for rule in group["rules"])
    read = set(re.findall(r"\b(proxy_[a-z_]+)", exprs))
    assert read, "the rules read no proxy_app series"
    for series in sorted(read):
        assert re.search(rf"^{series}[{{ ]", exported, re.MULTILINE), f"{series} not exported"
