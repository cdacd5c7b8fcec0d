"""llama.cpp's llama-server: a pinned, checksum-verified release, one GGUF model, the program."""

from __future__ import annotations

import re
from pathlib import Path

from pyinfra.api.exceptions import DeployError
from pyinfra.api.operation import OperationMeta
from pyinfra.context import host
from pyinfra.facts.files import Directory, File, Sha256File
from pyinfra.operations import files, server

from roles import ops
from roles.base import deploy, go_arch, host_data, install_packages
from roles.facts import GpuMemory
from roles.llamacpp.defaults import DEFAULTS
from roles.llamacpp.endpoint import (
    LlamaServer,
    asset_problem,
    command_line,
    server_args,
    unsafe_args,
)
from roles.services import Manager

__all__ = ["LlamaServer", "deploy_llamacpp"]

ROLE_DIR = Path(__file__).parent
ARCHIVE_DIR = "/var/cache/llama.cpp"
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
    downloads = _checked_downloads()
    install_packages(list(data.llamacpp_packages), "llama.cpp")
    server.user(
        name="Create the llama user",
        user=data.llamacpp_user,
        system=True,
        home=data.llamacpp_home,
        shell="/usr/sbin/nologin",
        ensure_home=True,
    )
    binary, unpack = _install_release(downloads)
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


def _checked_downloads() -> list[tuple[str, str]]:
    """The release archives to install as (url, sha256), checked against the host."""
    data = host.data
    version = str(data.llamacpp_version)
    pairs = [(data.llamacpp_download_url, data.llamacpp_sha256)]
    pairs += [(str(url), str(sha)) for url, sha in data.llamacpp_extra_downloads]
    downloads = [(url.format(version=version), str(sha).lower()) for url, sha in pairs]
    problem = asset_problem(downloads[0][0], go_arch())
    if problem:
        raise DeployError(problem)
    for url, sha256 in [*downloads, (data.llamacpp_model_url, data.llamacpp_model_sha256)]:
        if not re.fullmatch(r"[0-9a-f]{64}", str(sha256).lower()):
            raise DeployError(
                f"The SHA-256 for {url} must be 64 hex digits, not {sha256!r}; set it from the "
                "publisher's page (llamacpp_sha256, llamacpp_extra_downloads or "
                "llamacpp_model_sha256), quoted with --data."
            )
    return downloads


def _install_release(downloads: list[tuple[str, str]]) -> tuple[str, OperationMeta]:
    """Download and verify the archives; unpack them when new or the binary is missing."""
    version, prefix = str(host.data.llamacpp_version), host.data.llamacpp_prefix
    target = f"{prefix}/{version}"
    fetched = [
        ops.verified_download(
            name=f"Download {url.rsplit('/', 1)[-1]} and check its SHA-256",
            src=url,
            dest=f"{ARCHIVE_DIR}/{url.rsplit('/', 1)[-1]}",
            sha256=sha256,
            what=f"llama.cpp {version} archive",
            key="llamacpp_sha256",
            source="the release page's checksum",
        )
        for url, sha256 in downloads
    ]
    archives = " ".join(f"{ARCHIVE_DIR}/{url.rsplit('/', 1)[-1]}" for url, _ in downloads)
    binary = f"{target}/{PROGRAM}"
    present = host.get_fact(File, path=binary)
    # Binary there? Unpack again only after a new download; otherwise unpack now.
    unpack = server.shell(
        name=f"Unpack llama.cpp {version} into {target}",
        commands=[
            f"rm -rf {target}.new && mkdir -p {target}.new",
            f"for a in {archives}; do tar -xzf $a -C {target}.new --strip-components=1 "
            "--no-same-owner || exit 1; done",
            f"test -x {target}.new/{PROGRAM}",
            f"rm -rf {target} && mv {target}.new {target}",
        ],
        _if=(lambda: any(op.did_change() for op in fetched)) if present else None,
    )
    return binary, unpack


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
