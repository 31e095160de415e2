"""Messages and a helper the portable protocol tests share.

Not a test module itself: ``PORTABLE_HELPER`` asks
tests/device_runtime/test_under_micropython.py to compile it into the
bytecode tree beside the portable tests that import it.
"""

PORTABLE_HELPER = True

CID = b"abcdefgh"
ENROLL = {
    "device_id": "dev-1",
    "hwmodel": "board",
    "swname": "fw",
    "swversion": "1.2.3",
    "rot": "tpm",
    "boot_count": 4,
}


def raises(error, function, *args):
    """The *error* that ``function(*args)`` raises; anything else fails the test."""
    try:
        function(*args)
    except error as exc:
        return exc
    raise AssertionError("expected " + error.__name__)
