"""Host checks and packages every role shares."""

from __future__ import annotations

from pyinfra import host, state
from pyinfra.api import DeployError
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import Arch, OsRelease
from pyinfra.operations import apt

SUPPORTED = {"ubuntu": ("22.04", "24.04"), "debian": ("12",)}
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
BASE_PACKAGES = ["ca-certificates", "curl", "iproute2", "python3"]


def check_platform() -> str:
    """Refuse anything but Ubuntu 22.04/24.04 and Debian 12; return the Go-style arch name.

    Also refuses ``--diff``: pyinfra would print the uploaded key, password and API key.
    """
    if state.config.DIFF:
        raise DeployError(
            "--diff would print the Redis key, its password and the proxy API key; "
            "run without --diff (use --dry to see which operations would change)."
        )
    release = host.get_fact(OsRelease) or {}
    distro, version = release.get("id", "?"), release.get("version_id", "?")
    if version not in SUPPORTED.get(distro, ()):
        raise DeployError(
            f"{host.name} runs {distro} {version}; this deploy supports only "
            "Ubuntu 22.04, Ubuntu 24.04 and Debian 12."
        )
    machine = host.get_fact(Arch)
    if machine not in ARCHES:
        raise DeployError(
            f"{host.name} is a {machine} machine; only amd64 and arm64 are supported."
        )
    return ARCHES[machine]


def install_packages(packages: list[str], role: str) -> None:
    """Install Debian packages, refreshing the apt lists only when something is missing."""
    installed = host.get_fact(DebPackages)
    missing = [name for name in packages if name not in installed]
    # Anything to install? Only then is a (cached) apt update worth its time.
    if missing:
        apt.update(name=f"Update apt lists for {role}", cache_time=3600)
    apt.packages(
        name=f"Install {role} packages",
        packages=packages,
        no_recommends=True,
    )


def install_base() -> None:
    """Install the tools the deploy itself and the host checks use (curl, ss)."""
    install_packages(BASE_PACKAGES, "base")
