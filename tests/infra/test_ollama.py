"""Ollama: runs under its manager, on loopback only, pinned version, every model pulled."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
from testinfra.host import Host

from proxy_app.engines.ollama import canonical_name
from tests.infra.conftest import skip_unless_engine

pytestmark = pytest.mark.infra


# Module scope: it must skip before the module's own module-scoped fixtures run.
@pytest.fixture(autouse=True, scope="module")
def _ollama_hosts_only(engine: str) -> None:
    skip_unless_engine(engine, "ollama", "Ollama")


def _cli(data: dict[str, Any], args: str) -> str:
    """The host's `ollama` CLI, pointed at the deployed server."""
    address = f"{data['ollama_bind']}:{data['ollama_port']}"
    return f"OLLAMA_HOST={shlex.quote(address)} {data['ollama_prefix']}/bin/ollama {args}"


def test_runs_under_its_manager(program) -> None:
    assert program("ollama").is_running


@pytest.mark.parametrize("address, listening", [("127.0.0.1", True), ("0.0.0.0", False)])
def test_listens_on_loopback_only(
    host: Host, host_data: dict[str, Any], address: str, listening: bool
) -> None:
    socket = host.socket(f"tcp://{address}:{host_data['ollama_port']}")
    assert socket.is_listening is listening


def test_ollama_list_has_every_model(host: Host, host_data: dict[str, Any]) -> None:
    out = host.check_output(_cli(host_data, "list"))
    names = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    assert {canonical_name(m) for m in host_data["ollama_models"]} <= names


def test_api_tags_has_every_model(host: Host, host_data: dict[str, Any]) -> None:
    url = f"http://127.0.0.1:{host_data['ollama_port']}/api/tags"
    tags = json.loads(host.check_output(f"curl -fsS --max-time 10 {url}"))
    names = {m["name"] for m in tags["models"]}
    assert {canonical_name(m) for m in host_data["ollama_models"]} <= names


def test_installed_version_is_pinned(host: Host, host_data: dict[str, Any]) -> None:
    out = host.check_output(_cli(host_data, "-v"))
    # Server and client version (the client's only shows when it differs).
    assert set(re.findall(r"\d+\.\d+\.\d+\S*", out)) == {str(host_data["ollama_version"])}, out
