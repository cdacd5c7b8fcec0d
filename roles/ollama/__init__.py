"""Ollama: pinned, checksum-verified release; the server as a program; models pulled and warm."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Groups
from pyinfra.operations import files, server

from roles import ops
from roles.base import deploy, go_arch, host_data, install_packages
from roles.facts import GpuMemory
from roles.ollama.defaults import DEFAULTS
from roles.ollama.endpoint import OllamaServer
from roles.ollama.profiles import fit_problem
from roles.ollama.release import checked_release, install_release
from roles.services import Manager

__all__ = ["OllamaServer", "deploy_ollama"]

ROLE_DIR = Path(__file__).parent


@deploy("Deploy Ollama", data_defaults=DEFAULTS)
def deploy_ollama(manager: Manager) -> OllamaServer:
    """
    Install the pinned Ollama release, run ``ollama serve``, pull and warm the models.

    + manager: the host's service manager, from ``services.ensure_manager``

    .. code:: python

        ollama = deploy_ollama(manager)  # ollama.url, ollama.models, ...
    """
    data = host.data
    _check_gpu_fit()
    url, sha256 = checked_release(go_arch())
    binary = f"{data.ollama_prefix}/bin/ollama"
    install_packages(["zstd"], "Ollama")
    gpu_groups: list[str] = [g for g in ("video", "render") if g in host.get_fact(Groups)]
    server.user(
        name="Create the ollama user",
        user=data.ollama_user,
        system=True,
        home=data.ollama_home,
        shell="/usr/sbin/nologin",
        groups=gpu_groups or None,
        ensure_home=True,
    )
    models_dir = _models_dir()
    files.directory(
        name="Create the model store",
        path=models_dir,
        user=data.ollama_user,
        group=data.ollama_user,
        mode="755",
    )
    unpack = install_release(url, sha256, binary)
    env = {
        "OLLAMA_HOST": f"{data.ollama_bind}:{data.ollama_port}",
        "OLLAMA_MODELS": models_dir,
        "OLLAMA_CONTEXT_LENGTH": str(data.ollama_context_length),
        "OLLAMA_KEEP_ALIVE": str(data.ollama_keep_alive),
        "OLLAMA_FLASH_ATTENTION": "1" if data.ollama_flash_attention else "0",
        "OLLAMA_MAX_LOADED_MODELS": str(data.ollama_max_loaded_models),
        "OLLAMA_NUM_PARALLEL": str(data.ollama_num_parallel),
        **{str(k): str(v) for k, v in data.ollama_extra_env.items()},
    }
    started = manager.ensure_program(
        "ollama",
        ROLE_DIR,
        restart_on=[unpack],
        binary=binary,
        run_as=data.ollama_user,
        home=data.ollama_home,
        groups=gpu_groups,
        env=env,
    )
    served = OllamaServer.from_data(host_data())
    _pull_and_warm(binary, env["OLLAMA_HOST"], served.url, started)
    return served


def _pull_and_warm(
    binary: str, ollama_host: str, local_url: str, started: Callable[[], bool]
) -> None:
    """Wait for the API, pull missing models, warm the first after a pull or (re)start."""
    data = host.data
    ops.wait_for_url(
        name="Wait for the Ollama API",
        url=f"{local_url}/api/version",
        timeout=data.ollama_wait_timeout,
        what="Ollama",
    )
    pulls = [
        ops.model_pulled(
            name=f"Pull {model} if missing",
            model=model,
            url=local_url,
            binary=binary,
            ollama_host=ollama_host,
        )
        for model in data.ollama_models
    ]
    if not data.ollama_models:
        return
    body = json.dumps({"model": data.ollama_models[0]})
    # Warm only after a pull or a (re)start: otherwise the model is loaded already.
    server.shell(
        name=f"Warm up {data.ollama_models[0]} after a pull or restart",
        commands=[
            f"curl -fsS -o /dev/null --max-time {int(data.ollama_warm_timeout)} "
            f"-H 'Content-Type: application/json' -d {shlex.quote(body)} "
            f"{local_url}/api/generate"
        ],
        _if=lambda: started() or any(pull.did_change() for pull in pulls),
    )


def _check_gpu_fit() -> None:
    """Refuse, with a sentence, models that cannot stay loaded together in this GPU's memory."""
    data = host.data
    vram_mib = host.get_fact(GpuMemory)
    # No NVIDIA GPU (or no nvidia-smi, as on the sandbox): nothing to measure against.
    if not vram_mib or not data.ollama_check_vram:
        return
    problem = fit_problem(
        list(data.ollama_models),
        int(data.ollama_context_length),
        int(data.ollama_num_parallel),
        int(data.ollama_max_loaded_models),
        vram_mib,
    )
    if problem:
        raise DeployError(f"{host.name}: {problem}")


def _models_dir() -> str:
    if host.data.ollama_models_dir:
        return str(host.data.ollama_models_dir)
    if host.get_fact(Directory, path="/workspace"):
        return "/workspace/ollama/models"
    return f"{host.data.ollama_home}/models"
