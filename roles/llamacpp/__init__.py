"""llama.cpp's llama-server: a pinned, checksum-verified release, one GGUF model, the program."""

from __future__ import annotations

from pathlib import Path

from pyinfra.api.exceptions import DeployError
from pyinfra.api.operation import OperationMeta
from pyinfra.context import host
from pyinfra.facts.files import Directory, Sha256File
from pyinfra.operations import files, server

from roles import ops
from roles.base import deploy, host_data, install_packages
from roles.facts import GpuMemory
from roles.llamacpp.defaults import DEFAULTS
from roles.llamacpp.endpoint import LlamaServer, command_line, server_args, unsafe_args
from roles.llamacpp.release import checked_downloads, install_release
from roles.services import Manager

__all__ = ["LlamaServer", "deploy_llamacpp"]

ROLE_DIR = Path(__file__).parent
PROGRAM = "llama-server"


@deploy("Deploy llama.cpp", data_defaults=DEFAULTS)
def deploy_llamacpp(manager: Manager) -> LlamaServer:
    """
    Install the pinned llama.cpp release and a GGUF model, run ``llama-server`` on loopback.

    + manager: the host's service manager, from ``services.ensure_manager``

    .. code:: python

        engine = deploy_llamacpp(manager)  # engine.url, engine.model, engine.context_length
    """
    data = host.data
    downloads = checked_downloads()
    install_packages(list(data.llamacpp_packages), "llama.cpp")
    server.user(
        name="Create the llama user",
        user=data.llamacpp_user,
        system=True,
        home=data.llamacpp_home,
        shell="/usr/sbin/nologin",
        ensure_home=True,
    )
    binary, unpack = install_release(downloads, PROGRAM)
    model_path, model_change = _install_model()
    vram_mib = host.get_fact(GpuMemory) or 0
    args = server_args(host_data(), model_path, vram_mib)
    bad = unsafe_args(args)
    if bad:
        raise DeployError(
            f"llama-server arguments {bad} are empty or hold a quote, %, $ or backslash, "
            "which a systemd unit and a supervisor program read differently; remove them."
        )
    manager.ensure_program(
        PROGRAM,
        ROLE_DIR,
        restart_on=[unpack, *model_change],
        command=command_line([binary, *args]),
        run_as=data.llamacpp_user,
        home=data.llamacpp_home,
    )
    served = LlamaServer.from_data(host_data(), vram_mib)
    # /health answers 503 while the model loads, 200 once requests are served.
    ops.wait_for_url(
        name="Wait for llama-server's /health",
        url=f"{served.url}/health",
        timeout=data.llamacpp_wait_timeout,
        what="llama-server",
    )
    return served


def _install_model() -> tuple[str, list[OperationMeta]]:
    """Download the GGUF (or check the path given); return its path and the download."""
    data = host.data
    source, sha256 = str(data.llamacpp_model_url), str(data.llamacpp_model_sha256).lower()
    if source.startswith("/"):
        # A file already on the host: checked, never copied.
        if host.get_fact(Sha256File, path=source) != sha256:
            raise DeployError(
                f"{source} is missing on {host.name} or its SHA-256 is not {sha256} "
                "(llamacpp_model_sha256)."
            )
        return source, []
    models_dir = _models_dir()
    files.directory(
        name="Create the model store",
        path=models_dir,
        user=data.llamacpp_user,
        group=data.llamacpp_user,
        mode="755",
    )
    path = f"{models_dir}/{source.rsplit('/', 1)[-1].split('?', 1)[0]}"
    download = ops.verified_download(
        name=f"Download the model {path.rsplit('/', 1)[-1]} and check its SHA-256",
        src=source,
        dest=path,
        sha256=sha256,
        what="model",
        key="llamacpp_model_sha256",
        source="the model file's SHA-256 on its download page",
    )
    return path, [download]


def _models_dir() -> str:
    if host.data.llamacpp_models_dir:
        return str(host.data.llamacpp_models_dir)
    if host.get_fact(Directory, path="/workspace"):
        return "/workspace/llamacpp/models"
    return f"{host.data.llamacpp_home}/models"
