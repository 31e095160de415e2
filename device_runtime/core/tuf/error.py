"""The one error the TUF client raises: a stable code and the reason.

Kept beside the client rather than in ``core/errors.py``: no peer sends it, and
a device that does not update should not carry it in its heap.
"""

from device_runtime.core.errors import SevenfoldError


class TufError(SevenfoldError):
    """``code`` says what kind of check failed (``bad-metadata``, ``threshold``, ``rollback``,
    ``expired``, ``mismatch``, ``unknown-target``, ``too-large``, ``http-status``);
    ``reason`` says which.
    ``status`` is the HTTP status of an ``http-status`` answer (0 when none came)."""

    def __init__(self, code: str, reason: str, status: int = 0) -> None:
        super().__init__(reason)
        self.code = code
        self.status = status
