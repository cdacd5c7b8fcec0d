"""The pinned llama.cpp release: checked against the host, downloaded, verified, unpacked."""

from __future__ import annotations

import re

from pyinfra.api.exceptions import DeployError
from pyinfra.api.operation import OperationMeta
from pyinfra.context import host
from pyinfra.facts.files import File
from pyinfra.operations import server

from roles import ops
from roles.base import go_arch
from roles.llamacpp.endpoint import asset_problem

ARCHIVE_DIR = "/var/cache/llama.cpp"


def checked_downloads() -> list[tuple[str, str]]:
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


def install_release(downloads: list[tuple[str, str]], program: str) -> tuple[str, OperationMeta]:
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
    binary = f"{target}/{program}"
    present = host.get_fact(File, path=binary)
    # Binary there? Unpack again only after a new download; otherwise unpack now.
    unpack = server.shell(
        name=f"Unpack llama.cpp {version} into {target}",
        commands=[
            f"rm -rf {target}.new && mkdir -p {target}.new",
            f"for a in {archives}; do tar -xzf $a -C {target}.new --strip-components=1 "
            "--no-same-owner || exit 1; done",
            f"test -x {target}.new/{program}",
            f"rm -rf {target} && mv {target}.new {target}",
        ],
        _if=(lambda: any(op.did_change() for op in fetched)) if present else None,
    )
    return binary, unpack
