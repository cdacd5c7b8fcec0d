"""The fleet commands' exceptions: a problem the user fixes, told in sentences."""

from __future__ import annotations


class FleetError(Exception):
    """Raised when a fleet command cannot go on; the message says what was seen and the fix."""


class ApiError(FleetError):
    """Raised when the vast.ai API answers with an error; `code` is vast's `error` field."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class OfferTakenError(FleetError):
    """Raised when an offer was rented by someone else (or our bid is below its minimum)."""


class TunnelError(Exception):
    """A deployment's data, key or local port is wrong; the message is one sentence for the
    terminal (the tunnel, the gateway and the autoscaler print it and exit 2)."""
