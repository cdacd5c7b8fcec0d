"""What the llamacpp role serves and how llama-server is started: pure functions of host data.

deploy.py hands ``LlamaServer`` to the roles that use the engine (as ``OllamaServer`` for
Ollama); ``server_args`` is the command line the program runs, tested without a host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from roles.base import local_address
from roles.ollama.profiles import PROFILES, Profile

# Release assets name the architecture as x64/arm64.
RELEASE_ARCH = {"amd64": "x64", "arm64": "arm64"}
# The profile used where no GPU is seen (the sandbox, a CPU host): the default 12 GB one.
DEFAULT_PROFILE_GB = 12
# Characters that mean different things to systemd's ExecStart= and supervisord's command=.
_UNSAFE = re.compile(r"[\"'\\%$\n`]")


@dataclass(frozen=True)
class LlamaServer:
    """The address, model name, window and slots of the llama-server on a host."""

    url: str  # reachable from the host itself, e.g. http://127.0.0.1:8080
    model: str  # the name it answers to (--alias)
    context_length: int  # tokens per slot
    parallel: int  # slots

    @classmethod
    def from_data(cls, data: Mapping[str, Any], vram_mib: int = 0) -> LlamaServer:
        """What a server configured by ``data`` (the role's ``llamacpp_*`` keys) serves."""
        context, parallel = window(data, vram_mib)
        return cls(
            url=f"http://{local_address(str(data['llamacpp_bind']))}:{data['llamacpp_port']}",
            model=str(data["llamacpp_model_name"]),
            context_length=context,
            parallel=parallel,
        )


def profile_for(vram_mib: int) -> Profile:
    """The largest GPU profile that fits ``vram_mib`` (the 12 GB one when none is seen)."""
    if vram_mib <= 0:
        return next(p for p in PROFILES if p.vram_gb == DEFAULT_PROFILE_GB)
    vram_gb = vram_mib * 1024 * 1024 / 1e9
    fitting = [p for p in PROFILES if p.vram_gb * 1024**3 / 1e9 <= vram_gb + 0.5]
    return fitting[-1] if fitting else PROFILES[0]


def window(data: Mapping[str, Any], vram_mib: int = 0) -> tuple[int, int]:
    """(tokens per slot, slots): the data's values, each 0 taken from the GPU profile."""
    profile = profile_for(vram_mib)
    context = int(data["llamacpp_context_length"]) or profile.context
    parallel = int(data["llamacpp_parallel"]) or profile.parallel
    return context, parallel


def server_args(data: Mapping[str, Any], model_path: str, vram_mib: int = 0) -> list[str]:
    """llama-server's arguments: model, address, window, slots, offload, metrics, extras.

    ``--ctx-size`` is the KV cache of every slot together: tokens per slot × slots, as Ollama
    gives llama-server ``num_ctx × num_parallel``.
    """
    context, parallel = window(data, vram_mib)
    return [
        "--model", model_path,
        "--alias", str(data["llamacpp_model_name"]),
        "--host", str(data["llamacpp_bind"]),
        "--port", str(data["llamacpp_port"]),
        "--ctx-size", str(context * parallel),
        "--parallel", str(parallel),
        "--n-gpu-layers", str(data["llamacpp_gpu_layers"]),
        "--metrics",
        *[str(arg) for arg in data["llamacpp_extra_args"]],
    ]  # fmt: skip


def unsafe_args(args: Sequence[str]) -> list[str]:
    """The arguments a unit or supervisor line cannot carry verbatim (quotes, %, $, \\)."""
    return [arg for arg in args if _UNSAFE.search(arg) or not arg]


def command_line(args: Sequence[str]) -> str:
    """Join arguments for ExecStart= and command= alike (both split on blanks, honour "…")."""
    return " ".join(f'"{arg}"' if re.search(r"\s", arg) else arg for arg in args)


def asset_problem(url: str, arch: str) -> str | None:
    """A sentence when ``url``'s asset is not a .tar.gz for this architecture, else None."""
    asset = url.rsplit("/", 1)[-1]
    wanted = RELEASE_ARCH.get(arch, arch)
    if asset.endswith(f"-{wanted}.tar.gz"):
        return None
    return (
        f"llamacpp_download_url points at {asset}, which is not a …-{wanted}.tar.gz release "
        f"archive for this {arch} host; set llamacpp_download_url and llamacpp_sha256 for one."
    )
