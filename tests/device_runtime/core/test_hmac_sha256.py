"""Known-answer tests for HMAC-SHA256 (RFC 4231), run on CPython and under MicroPython."""

from device_runtime.core.hmac_sha256 import digests_equal, hmac_sha256

PORTABLE = True


def test_rfc4231_case_1():
    tag = hmac_sha256(b"\x0b" * 20, b"Hi There")
    assert tag.hex() == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"


def test_rfc4231_case_2():
    tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert tag.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_rfc4231_case_6_key_longer_than_block():
    tag = hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert tag.hex() == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_empty_key_and_message():
    tag = hmac_sha256(b"", b"")
    assert tag.hex() == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"


def test_digests_equal():
    tag = hmac_sha256(b"k", b"m")
    assert digests_equal(tag, bytes(tag))
    assert not digests_equal(tag, tag[:-1] + bytes([tag[-1] ^ 1]))
    assert not digests_equal(tag, tag[:31])
    assert digests_equal(b"", b"")
