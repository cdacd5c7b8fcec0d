"""The pinned Ollama release: checked against the host, downloaded, verified, unpacked."""

from __future__ import annotations

import re

from pyinfra.api.exceptions import DeployError
from pyinfra.api.operation import OperationMeta
from pyinfra.context import host
from pyinfra.operations import server

from roles import ops
from roles.facts import OllamaVersion

ARCHIVE_DIR = "/var/cache/ollama"


def checked_release(arch: str) -> tuple[str, str]:
    """The archive URL and SHA-256 to install, checked against the host's architecture."""
    url = host.data.ollama_download_url.format(version=host.data.ollama_version)
    asset = url.rsplit("/", 1)[-1]
    if f"linux-{arch}" not in asset:
        raise DeployError(
            f"ollama_download_url points at {asset}, which does not match this {arch} host; "
            f"set ollama_download_url and ollama_sha256 for the linux-{arch} asset."
        )
    sha256 = str(host.data.ollama_sha256).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise DeployError(
            f"ollama_sha256 must be 64 hex digits, not {sha256!r}; pyinfra's --data reads an "
            "all-digit value as a number, so quote it: --data 'ollama_sha256=\"<hex>\"'."
        )
    return url, sha256


def install_release(url: str, sha256: str, binary: str) -> OperationMeta:
    """Download and verify the archive, then unpack it when it is new or the version differs."""
    version, prefix = str(host.data.ollama_version), host.data.ollama_prefix
    archive = f"{ARCHIVE_DIR}/{url.rsplit('/', 1)[-1]}"
    download = ops.verified_download(
        name=f"Download Ollama {version} and check its SHA-256",
        src=url,
        dest=archive,
        sha256=sha256,
        what=f"Ollama {version} archive",
    )
    installed = host.get_fact(OllamaVersion, binary=binary)
    # Installed version differs? Unpack regardless; otherwise only after a new download.
    return server.shell(
        name=f"Unpack Ollama {version} into {prefix}",
        commands=[
            f"rm -rf {prefix}/lib/ollama",  # stale runners must not outlive an upgrade
            f"tar -I zstd -xf {archive} -C {prefix} --no-same-owner",
        ],
        _if=download.did_change if installed == version else None,
    )
