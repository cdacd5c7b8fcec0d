"""No secret in what proxy_app echoes or logs: Ollama URL credentials, query-string keys."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from ollama_double.server import OllamaDouble
from tests.conftest import API_KEY


def test_ollama_url_credentials_are_never_echoed(make_proxy: Any, double: OllamaDouble) -> None:
    host = double.url.removeprefix("http://")
    proxy = make_proxy(ollama_url=f"http://admin:s3cret@{host}")
    assert httpx.get(proxy.url + "/health").json()["status"] == "healthy"
    double.stop()
    health = httpx.get(proxy.url + "/health?deep=1", headers={"x-api-key": API_KEY})
    assert health.status_code == 503
    assert "s3cret" not in health.text and "***@" in health.text
    body = {"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "x"}]}
    for stream in (False, True):
        answer = httpx.post(
            proxy.url + "/v1/messages",
            json={**body, "stream": stream},
            headers={"x-api-key": API_KEY},
        )
        assert answer.status_code == 529
        assert "s3cret" not in answer.text and "***@" in answer.text


def test_query_string_secrets_are_not_logged(proxy: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    httpx.get(proxy.url + "/v1/models?api_key=sk-leaked&limit=5", headers={"x-api-key": API_KEY})
    httpx.post(proxy.url + "/v1/messages?beta=true&token=sk-leaked2", json={})
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("/v1/models?api_key=***&limit=5" in line for line in access), access
    assert any("beta=true&token=***" in line for line in access), access
    assert "sk-leaked" not in caplog.text
