"""Credentials in URLs and secrets in query strings never reach a response or a log."""

from __future__ import annotations

import logging

import httpx
import pytest

from proxy_app.engines.ollama import OllamaClient
from proxy_app.errors import OverloadedError
from proxy_app.redact import AccessLogFilter, redact_query, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:s3cret@ollama:11434", "http://***@ollama:11434"),
        ("https://:s3cret@ollama/base", "https://***@ollama/base"),
        ("http://token@ollama", "http://***@ollama"),
        ("http://127.0.0.1:11434", "http://127.0.0.1:11434"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/v1/messages?beta=true", "/v1/messages?beta=true"),
        ("/v1/models?api_key=sk-1&limit=5", "/v1/models?api_key=***&limit=5"),
        ("/health?x=1&x=2", "/health?x=***&x=***"),
        ("/v1/messages", "/v1/messages"),
    ],
)
def test_redact_query(path: str, shown: str) -> None:
    assert redact_query(path) == shown


def test_access_log_record_is_masked() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/v1/models?key=sk-secret", "1.1", 200),
        None,
    )
    assert AccessLogFilter().filter(record)
    assert "sk-secret" not in record.getMessage()
    assert "/v1/models?key=***" in record.getMessage()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("failure", [httpx.ConnectError(""), httpx.ReadError("")])
async def test_unreachable_message_names_the_error_never_the_password(
    failure: httpx.TransportError,
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    client = OllamaClient(
        "http://admin:s3cret@ollama:11434",
        connect_timeout=1,
        read_timeout=1,
        transport=httpx.MockTransport(fail),
    )
    with pytest.raises(OverloadedError) as caught:
        await client.get_json("/api/version")
    await client.aclose()
    assert "s3cret" not in caught.value.message
    assert "http://***@ollama:11434" in caught.value.message
    assert (
        f"({type(failure).__name__})" in caught.value.message and "()" not in caught.value.message
    )
