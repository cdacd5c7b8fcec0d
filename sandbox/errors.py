"""The sandbox's one exception."""


class SandboxError(RuntimeError):
    """Raised when the sandbox host cannot be built, started, reached or stopped."""
