"""The reason a call gave for refusing its input, for the portable checks (CPython and MicroPython).

A module of its own, so that a check under a 64 KiB heap need not import a
root-of-trust backend (``rot/backends.py``) to learn why
something was refused.
"""

PORTABLE_HELPER = True


def refused(call, *args, errors=None):
    """The reason *call* gave for refusing *args* (a RootOfTrustError unless *errors* says
    which); fails if it accepted them."""
    if errors is None:
        from device_runtime.core.errors import RootOfTrustError

        errors = (RootOfTrustError,)
    try:
        call(*args)
    except errors as exc:
        assert exc.reason, "a refusal must say why"
        return exc.reason
    raise AssertionError("accepted " + repr(args)[:60])
