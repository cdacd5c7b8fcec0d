"""Ollama: pinned, checksum-verified release; the server as a program; models pulled and warm."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from pyinfra import host
from pyinfra.api import DeployError, deploy, operation
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Groups
from pyinfra.operations import files, server

from roles import ops, services
from roles.base import install_packages
from roles.facts import OllamaModels, OllamaVersion, model_ref
from roles.ollama.defaults import DEFAULTS

__all__ = ["deploy_ollama"]

ROLE_DIR = Path(__file__).parent
ARCHIVE_DIR = "/var/cache/ollama"


@deploy("Deploy Ollama", data_defaults=DEFAULTS)
def deploy_ollama(arch: str = "amd64") -> None:
    """
    Install the pinned Ollama release, run ``ollama serve``, pull and warm the models.

    + arch: the host's Go-style architecture (``amd64``/``arm64``) from ``base.check_platform``

    .. code:: python

        deploy_ollama(check_platform())
    """
    data = host.data
    version, prefix = str(data.ollama_version), data.ollama_prefix
    url = data.ollama_download_url.format(version=version)
    asset = url.rsplit("/", 1)[-1]
    if f"linux-{arch}" not in asset:
        raise DeployError(
            f"ollama_download_url points at {asset}, which does not match this {arch} host; "
            f"set ollama_download_url and ollama_sha256 for the linux-{arch} asset."
        )
    sha256 = str(data.ollama_sha256).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise DeployError(
            f"ollama_sha256 must be 64 hex digits, not {sha256!r}; pyinfra's --data reads an "
            "all-digit value as a number, so quote it: --data 'ollama_sha256=\"<hex>\"'."
        )
    binary = f"{prefix}/bin/ollama"
    local_url = f"http://{_client_address(data.ollama_bind)}:{data.ollama_port}"

    install_packages(["zstd"], "Ollama")
    gpu_groups = [g for g in ("video", "render") if g in host.get_fact(Groups)]
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

    archive = ops.verified_download(
        name=f"Download Ollama {version} and check its SHA-256",
        src=url,
        dest=f"{ARCHIVE_DIR}/{asset}",
        sha256=sha256,
        what=f"Ollama {version} archive",
    )
    installed = host.get_fact(OllamaVersion, binary=binary)
    # Installed version differs? Unpack regardless; otherwise only after a new download.
    unpack = server.shell(
        name=f"Unpack Ollama {version} into {prefix}",
        commands=[
            f"rm -rf {prefix}/lib/ollama",  # stale runners must not outlive an upgrade
            f"tar -I zstd -xf {ARCHIVE_DIR}/{asset} -C {prefix} --no-same-owner",
        ],
        _if=archive.did_change if installed == version else None,
    )

    env = {
        "OLLAMA_HOST": f"{data.ollama_bind}:{data.ollama_port}",
        "OLLAMA_MODELS": models_dir,
        "OLLAMA_CONTEXT_LENGTH": str(data.ollama_context_length),
        "OLLAMA_KEEP_ALIVE": str(data.ollama_keep_alive),
        "OLLAMA_FLASH_ATTENTION": "1" if data.ollama_flash_attention else "0",
        **{str(k): str(v) for k, v in data.ollama_extra_env.items()},
    }
    started = services.ensure_program(
        "ollama",
        ROLE_DIR,
        restart_on=[unpack],
        binary=binary,
        run_as=data.ollama_user,
        home=data.ollama_home,
        groups=gpu_groups,
        env=env,
    )
    ops.wait_for_url(
        name="Wait for the Ollama API",
        url=f"{local_url}/api/version",
        timeout=data.ollama_wait_timeout,
        what="Ollama",
    )
    pulls = [
        model_pulled(
            name=f"Pull {model} if missing",
            model=model,
            url=local_url,
            binary=binary,
            ollama_host=env["OLLAMA_HOST"],
        )
        for model in data.ollama_models
    ]
    if data.ollama_models:
        body = json.dumps({"model": data.ollama_models[0]})
        # Warm only after a pull or a (re)start: otherwise the model is loaded already.
        server.shell(
            name=f"Warm up {data.ollama_models[0]} after a pull or restart",
            commands=[
                f"curl -fsS -o /dev/null --max-time {int(data.ollama_warm_timeout)} "
                f"-H 'Content-Type: application/json' -d {shlex.quote(body)} {local_url}/api/generate"
            ],
            _if=lambda: started() or any(pull.did_change() for pull in pulls),
        )


@operation()
def model_pulled(model: str, url: str, binary: str, ollama_host: str):
    """
    Pull ``model`` through the running server unless ``/api/tags`` lists it already.

    + model: a model reference such as ``qwen2.5-coder:7b``
    + url: the server's base URL, for the check
    + binary: the ``ollama`` CLI (its progress lines show with ``pyinfra -v``)
    + ollama_host: ``OLLAMA_HOST`` for the CLI
    """
    if model_ref(model) in host.get_fact(OllamaModels, url=url):
        host.noop(f"model {model} is already present")
        return
    yield f"OLLAMA_HOST={shlex.quote(ollama_host)} {binary} pull {shlex.quote(model)}"


def _models_dir() -> str:
    if host.data.ollama_models_dir:
        return str(host.data.ollama_models_dir)
    if host.get_fact(Directory, path="/workspace"):
        return "/workspace/ollama/models"
    return f"{host.data.ollama_home}/models"


def _client_address(bind: str) -> str:
    return "127.0.0.1" if bind in ("", "0.0.0.0", "::") else bind
