"""The monitor commands' own error: a command line that cannot work as given."""

from __future__ import annotations

from device_runtime.core.errors import SevenfoldError


class UsageError(SevenfoldError):
    code = "usage"
