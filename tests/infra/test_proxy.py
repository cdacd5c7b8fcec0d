"""proxy_app: a non-root program on loopback, healthy, and answering only with the key."""

from __future__ import annotations

import json
import shlex
import uuid
from typing import Any

import pytest
from testinfra.host import Host

from fleet.claude_code import proxy_key
from fleet.errors import TunnelError
from roles.proxy import ENV_FILE
from tests.infra.conftest import listener_pid

pytestmark = pytest.mark.infra
# /health's name for the engine component: Ollama's, or the OpenAI-compatible llama-server's.
ENGINE_COMPONENT = {"ollama": "ollama", "llamacpp": "engine"}


def _question() -> dict[str, Any]:
    """A request no cache has seen (a cached reply would not prove that the model answers)."""
    content = f"Reply with one short sentence. ({uuid.uuid4().hex})"
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": content}],
    }


@pytest.fixture(scope="module")
def api_key() -> str:
    try:
        return proxy_key()
    except TunnelError as exc:
        pytest.fail(str(exc), pytrace=False)


def _post(data: dict[str, Any], key: str | None) -> str:
    """curl on the host: POST /v1/messages; prints the body, then the status on its own line."""
    argv = ["curl", "-sS", "--max-time", "120", "-w", "\\n%{http_code}"]
    argv += ["-H", "content-type: application/json", "-H", "anthropic-version: 2023-06-01"]
    argv += ["-d", json.dumps(_question()), f"http://127.0.0.1:{data['proxy_port']}/v1/messages"]
    command = shlex.join(argv)
    if key is not None:  # the key travels in a variable, not in curl's argv on the host
        command = f'KEY={shlex.quote(key)}; {command} -H "x-api-key: $KEY"'
    return command


def test_runs_under_its_manager(program) -> None:
    assert program("proxy").is_running


def test_runs_as_its_own_user(host: Host, host_data: dict[str, Any]) -> None:
    pid = listener_pid(host, host_data["proxy_port"])
    user = host.check_output(f"ps -o user= -p {pid}").strip()
    assert user == host_data["proxy_user"] != "root"


@pytest.mark.parametrize("address, listening", [("127.0.0.1", True), ("0.0.0.0", False)])
def test_listens_on_loopback_only(
    host: Host, host_data: dict[str, Any], address: str, listening: bool
) -> None:
    assert host.socket(f"tcp://{address}:{host_data['proxy_port']}").is_listening is listening


def test_health_is_healthy(host: Host, host_data: dict[str, Any], engine: str) -> None:
    url = f"http://127.0.0.1:{host_data['proxy_port']}/health"
    health = json.loads(host.check_output(f"curl -fsS --max-time 10 {url}"))
    assert health["status"] == "healthy", health
    assert health["components"][ENGINE_COMPONENT[engine]]["status"] == "ok"
    assert health["components"]["cache"]["status"] == "ok"


def test_messages_without_key_is_401(host: Host, host_data: dict[str, Any]) -> None:
    body, _, status = host.check_output(_post(host_data, None)).rpartition("\n")
    assert status == "401", body
    assert json.loads(body)["type"] == "error"


def test_messages_with_key_answers(host: Host, host_data: dict[str, Any], api_key: str) -> None:
    body, _, status = host.check_output(_post(host_data, api_key)).rpartition("\n")
    assert status == "200", body
    message = json.loads(body)
    assert message["type"] == "message" and message["role"] == "assistant"
    assert "".join(b.get("text", "") for b in message["content"]).strip()


def test_env_file_private_to_the_proxy_user(host: Host, host_data: dict[str, Any]) -> None:
    env_file = host.file(ENV_FILE)
    assert (env_file.user, env_file.mode) == (host_data["proxy_user"], 0o600)
