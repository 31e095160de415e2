"""The one error a capture reader raises."""

from __future__ import annotations

from device_runtime.core.errors import SevenfoldError


class CaptureError(SevenfoldError, ValueError):
    """The capture file is damaged or hostile; the message says where and why.

    Readers convert every structural problem into this one type so a caller can
    stop reading a bad file cleanly instead of crashing on an arbitrary error.
    """

    code = "bad-capture"
