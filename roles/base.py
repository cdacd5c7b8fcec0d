"""What every role shares: the platform check, Debian packages, addresses, a typed @deploy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from pyinfra.api.deploy import deploy as pyinfra_deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host, state
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import Arch, OsRelease
from pyinfra.operations import apt

P = ParamSpec("P")
R = TypeVar("R")

SUPPORTED = {"ubuntu": ("22.04", "24.04"), "debian": ("12",)}
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
BASE_PACKAGES = ["ca-certificates", "curl", "iproute2", "python3"]
# A service bound to every address is reached on loopback from the host itself.
WILDCARD_BINDS = ("", "0.0.0.0", "::")


def deploy(name: str, data_defaults: dict[str, Any]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """pyinfra's ``@deploy``, typed: the role keeps its own signature and return value.

    pyinfra types a deploy as an operation (global arguments first, returning OperationMeta);
    the roles return what the next role needs (a URL, a model list), so keep the real types.
    """

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        return cast(Callable[P, R], pyinfra_deploy(name, data_defaults=data_defaults)(func))

    return wrap


def check_platform() -> None:
    """Refuse anything but Ubuntu 22.04/24.04 and Debian 12 on amd64/arm64.

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
    go_arch()


def go_arch() -> str:
    """The host's Go-style architecture name (``amd64``/``arm64``), as release assets spell it."""
    machine = host.get_fact(Arch)
    if machine not in ARCHES:
        raise DeployError(
            f"{host.name} is a {machine} machine; only amd64 and arm64 are supported."
        )
    return ARCHES[machine]


def host_data() -> dict[str, Any]:
    """This host's data as a plain dict: inventory, group data, then the running role's defaults."""
    data: dict[str, Any] = host.data.dict()  # type: ignore[no-untyped-call]  # untyped in pyinfra
    return data


def local_address(bind: str) -> str:
    """The address a service bound to ``bind`` answers on from the host itself."""
    return "127.0.0.1" if bind in WILDCARD_BINDS else bind


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
