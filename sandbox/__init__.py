"""The sandbox host: the default local deploy target, shaped like a vast.ai container.

CLI: `python -m sandbox {build,up,down,destroy,status,ssh-config,ssh}`.
"""

from .errors import SandboxError
from .host import Sandbox, default_state_dir
from .rootfs import build_rootfs, default_rootfs

__all__ = ["Sandbox", "SandboxError", "build_rootfs", "default_rootfs", "default_state_dir"]
