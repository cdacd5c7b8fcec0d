"""The fleet commands' one exception: a problem the user fixes, told in sentences."""

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
