"""The sandbox hosts: the default local deploy target, each shaped like a vast.ai container.

CLI: `python -m sandbox {build,up,down,restart,destroy,status,ssh-config,ssh}`.
"""

from .errors import SandboxError
from .fleet import Fleet, default_fleet_dir, host_names
from .host import Sandbox
from .rootfs import build_rootfs, default_rootfs

__all__ = [
    "Fleet",
    "Sandbox",
    "SandboxError",
    "build_rootfs",
    "default_fleet_dir",
    "default_rootfs",
    "host_names",
]
