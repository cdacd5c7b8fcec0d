"""The deploy of a host whose engine is llamacpp, on pyinfra's @fake connector (no target).

Proves the engine switch (llama.cpp, Redis and proxy_app in front of llama-server; no
Ollama), the program under both managers, and the sentences for missing checksums and an
unknown engine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.deploy.test_fake_deploy import commands_of, run_fake

MODEL_SHA = "ab" * 32
LLAMACPP = ["--data", "engine=llamacpp", "--data", f'llamacpp_model_sha256="{MODEL_SHA}"']


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fake-llamacpp")
    (root / "llm_selfhost_proxy-0.1.0-py3-none-any.whl").write_bytes(b"not a real wheel")
    return root


@pytest.fixture(scope="module")
def llamacpp_run(workdir: Path) -> subprocess.CompletedProcess[str]:
    return run_fake(workdir, *LLAMACPP)


def _names(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [op["name"] for op in json.loads(run.stdout)["results"]["operations"]]


def test_llamacpp_hosts_get_llama_server_redis_and_the_proxy(
    llamacpp_run: subprocess.CompletedProcess[str],
) -> None:
    assert llamacpp_run.returncode == 0, llamacpp_run.stderr[-3000:]
    names = _names(llamacpp_run)
    assert "Deploy llama.cpp | Wait for llama-server's /health" in names
    assert [n for n in names if n.startswith("Deploy Redis")]
    assert "Deploy proxy | Wait for proxy_app's /health" in names
    assert not [n for n in names if n.startswith("Deploy Ollama")]


@pytest.mark.parametrize("host", ["containerhost", "systemdhost"])
def test_release_and_model_are_downloaded_and_checked(
    llamacpp_run: subprocess.CompletedProcess[str], host: str
) -> None:
    commands = "\n".join(commands_of(llamacpp_run, host))
    url = "https://github.com/ggml-org/llama.cpp/releases/download/b11312/"
    assert f"{url}llama-b11312-bin-ubuntu-vulkan-x64.tar.gz" in commands
    assert "qwen2.5-coder-7b-instruct-q4_k_m.gguf" in commands
    assert MODEL_SHA in commands
    assert "tar -xzf $a -C /opt/llama.cpp/b11312.new --strip-components=1" in commands


def test_container_host_runs_llama_server_under_supervisor(
    llamacpp_run: subprocess.CompletedProcess[str],
) -> None:
    commands = commands_of(llamacpp_run, "containerhost")
    assert any("/etc/supervisor/conf.d/llama-server.conf" in c for c in commands)
    assert not [c for c in commands if "systemctl" in c]


def test_systemd_host_runs_the_llama_server_unit(
    llamacpp_run: subprocess.CompletedProcess[str],
) -> None:
    commands = commands_of(llamacpp_run, "systemdhost")
    assert any("llama-server.service" in c for c in commands)


def test_missing_model_checksum_is_refused_with_a_sentence(workdir: Path) -> None:
    run = run_fake(workdir, "--limit", "@fake/containerhost", "--data", "engine=llamacpp")
    assert run.returncode != 0
    assert "must be 64 hex digits" in run.stderr and "llamacpp_model_sha256" in run.stderr


def test_unknown_engine_is_refused_with_a_sentence(workdir: Path) -> None:
    run = run_fake(workdir, "--limit", "@fake/containerhost", "--data", "engine=vllm")
    assert run.returncode != 0
    assert "engine = 'vllm' is not an engine; use one of: ollama, llamacpp." in run.stderr
