"""The one error the TUF client raises: a stable code and the reason.

Kept beside the client rather than in ``core/errors.py``: no peer sends it, and
a device that does not update should not carry it in its heap.
"""

from device_runtime.core.errors import SevenfoldError

CODES = (
    "bad-metadata",
    "threshold",
    "rollback",
    "expired",
    "mismatch",
    "unknown-target",
    "too-large",
    "http-status",
)


class TufError(SevenfoldError):
    """``code`` is one of ``CODES``: what kind of check failed; ``reason`` says which."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
