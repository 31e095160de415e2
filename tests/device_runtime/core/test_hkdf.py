"""HKDF-SHA256 against RFC 5869 test cases 1-3, on CPython and under MicroPython."""

from device_runtime.core.errors import CryptoError
from device_runtime.core.hkdf import MAX_OUTPUT, expand, extract, hkdf

PORTABLE = True


def _h(text):
    return bytes.fromhex(text)


def test_rfc5869_case_1():
    ikm = b"\x0b" * 22
    salt = _h("000102030405060708090a0b0c")
    info = _h("f0f1f2f3f4f5f6f7f8f9")
    prk = extract(salt, ikm)
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    okm = expand(prk, info, 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_rfc5869_case_2_long_inputs():
    ikm = bytes(range(0x00, 0x50))
    salt = bytes(range(0x60, 0xB0))
    info = bytes(range(0xB0, 0x100))
    okm = hkdf(ikm, salt, info, 82)
    assert okm.hex() == (
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87"
    )


def test_rfc5869_case_3_empty_salt_and_info():
    ikm = b"\x0b" * 22
    assert extract(b"", ikm).hex() == (
        "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"
    )
    assert hkdf(ikm, b"", b"", 42).hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def _refused(*args):
    try:
        expand(*args)
    except CryptoError as exc:
        return exc.reason
    raise AssertionError("accepted")


def test_bad_arguments_are_refused_with_reasons():
    prk = bytes(32)
    assert "length" in _refused(prk, b"", 0)
    assert "length" in _refused(prk, b"", MAX_OUTPUT + 1)
    assert "length" in _refused(prk, b"", True)
    assert "at least 32" in _refused(bytes(31), b"", 32)
    assert "info" in _refused(prk, "info", 32)
    assert len(expand(prk, b"", MAX_OUTPUT)) == MAX_OUTPUT
    try:
        extract(b"", "secret")
    except CryptoError as exc:
        assert "input key material" in exc.reason
    else:
        raise AssertionError("accepted a str")
