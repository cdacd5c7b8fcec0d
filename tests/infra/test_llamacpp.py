"""llama.cpp's llama-server: runs under its manager as its user, on loopback only, the pinned
binary and model, healthy, and answering: /v1/models, /tokenize, a short chat completion.

Skipped on hosts whose engine is Ollama (host data ``engine``). The model on the sandbox is
SmolLM2-135M-Instruct: the checks assert structure, never wording.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
from testinfra.host import Host

from roles.llamacpp import PROGRAM
from roles.llamacpp.endpoint import window
from tests.infra.conftest import listener_pid, skip_unless_engine

pytestmark = pytest.mark.infra


# Module scope: it must skip before the module's own module-scoped fixtures run.
@pytest.fixture(autouse=True, scope="module")
def _llamacpp_hosts_only(engine: str) -> None:
    skip_unless_engine(engine, "llamacpp", "llama-server")


def _url(data: dict[str, Any], path: str) -> str:
    return f"http://127.0.0.1:{data['llamacpp_port']}{path}"


def _get(host: Host, data: dict[str, Any], path: str) -> Any:
    return json.loads(host.check_output(f"curl -fsS --max-time 10 {_url(data, path)}"))


def _post(host: Host, data: dict[str, Any], path: str, body: dict[str, Any]) -> Any:
    payload = shlex.quote(json.dumps(body))
    out = host.check_output(
        f"curl -fsS --max-time 120 -H 'Content-Type: application/json' -d {payload} "
        f"{_url(data, path)}"
    )
    return json.loads(out)


@pytest.fixture(scope="module")
def server_pid(host: Host, host_data: dict[str, Any]) -> int:
    return listener_pid(host, int(host_data["llamacpp_port"]))


def test_runs_under_its_manager(program) -> None:
    assert program(PROGRAM).is_running


def test_runs_as_its_user(host: Host, host_data: dict[str, Any], server_pid: int) -> None:
    assert host.check_output(f"ps -o user= -p {server_pid}") == host_data["llamacpp_user"]


@pytest.mark.parametrize("address, listening", [("127.0.0.1", True), ("0.0.0.0", False)])
def test_listens_on_loopback_only(
    host: Host, host_data: dict[str, Any], address: str, listening: bool
) -> None:
    socket = host.socket(f"tcp://{address}:{host_data['llamacpp_port']}")
    assert socket.is_listening is listening


def test_runs_the_pinned_release(host: Host, host_data: dict[str, Any], server_pid: int) -> None:
    binary = f"{host_data['llamacpp_prefix']}/{host_data['llamacpp_version']}/{PROGRAM}"
    assert host.check_output(f"readlink /proc/{server_pid}/exe") == binary


def test_serves_the_pinned_model(host: Host, host_data: dict[str, Any], server_pid: int) -> None:
    argv = host.check_output(f"tr '\\0' '\\n' < /proc/{server_pid}/cmdline").splitlines()
    model = argv[argv.index("--model") + 1]
    digest = host.check_output(f"sha256sum {shlex.quote(model)}").split()[0]
    assert digest == host_data["llamacpp_model_sha256"]


def test_health_is_ok(host: Host, host_data: dict[str, Any]) -> None:
    assert _get(host, host_data, "/health") == {"status": "ok"}


def test_slots_and_window_follow_the_data(host: Host, host_data: dict[str, Any]) -> None:
    vram = host.run("nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits")
    mib = sum(int(x) for x in vram.stdout.split() if x.isdigit()) if vram.rc == 0 else 0
    context, parallel = window(host_data, mib)
    props = _get(host, host_data, "/props")
    assert props["total_slots"] == parallel
    assert props["default_generation_settings"]["n_ctx"] == context


def test_v1_models_lists_the_model(host: Host, host_data: dict[str, Any]) -> None:
    ids = [model["id"] for model in _get(host, host_data, "/v1/models")["data"]]
    assert ids == [host_data["llamacpp_model_name"]]


def test_tokenize_counts_tokens(host: Host, host_data: dict[str, Any]) -> None:
    tokens = _post(host, host_data, "/tokenize", {"content": "Hello, world."})["tokens"]
    assert tokens and all(isinstance(token, int) for token in tokens)


def test_chat_completion_answers(host: Host, host_data: dict[str, Any]) -> None:
    body = {
        "model": host_data["llamacpp_model_name"],
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        "max_tokens": 16,
    }
    answer = _post(host, host_data, "/v1/chat/completions", body)
    choice = answer["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    assert 0 < answer["usage"]["completion_tokens"] <= 16
    assert answer["usage"]["prompt_tokens"] > 0


def test_metrics_are_exported(host: Host, host_data: dict[str, Any]) -> None:
    out = host.check_output(f"curl -fsS --max-time 10 {_url(host_data, '/metrics')}")
    assert "llamacpp:prompt_tokens_total" in out
