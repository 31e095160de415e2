"""Evidence inputs out of the profile's range are refused, each naming its field, first.

PORTABLE: runs under pytest and under MicroPython at 64 KiB. Every input is
checked before the root of trust is asked anything, so a bad one never
reaches a signing key (or a slow TPM): the root of trust handed in here fails
the test if it is consulted at all. Tokens from real roots of trust, read with
independent code, are in ``test_evidence.py`` and
``test_evidence_under_micropython.py``.
"""

from device_runtime.core import evidence
from device_runtime.core.errors import InvalidField, TooLarge
from tests.device_runtime.evidence_on_device import INPUTS

PORTABLE = True


class NotConsulted:
    """A root of trust that must not be reached: every attribute fails the test."""

    def __getattr__(self, name):
        raise AssertionError("the root of trust was asked for " + name + " before the check")


GOOD = dict(INPUTS)
GOOD["deviceid_certificate"] = b"\x30\x03\x02\x01\x01"
BAD = (
    ("nonce", (b"", bytes(31), bytes(33), "x" * 32, None)),
    ("bootseed", (bytes(31), bytearray(33))),
    ("oemid", (bytes(2), bytes(4), "abc")),
    ("image_digest", (bytes(31), "x" * 32)),
    ("config_digest", (bytes(33), None)),
    ("dbgstat", (-1, 5, True, "1")),
    ("bootcount", (-1, 1 << 32, False)),
    ("security_version", (-1, 1 << 32)),
    ("uptime", (-1, 1 << 64)),
    ("swname", ("", "x" * 65, b"firmware")),
    ("swversion", ("", "x" * 33, None)),
    ("hwmodel", ("", "x" * 65)),
    ("device_id", ("", "x" * 65, 7)),
    ("deviceid_certificate", (b"", "certificate", None)),
)


def _token(**changes):
    inputs = dict(GOOD)
    inputs.update(changes)
    return evidence.token(NotConsulted(), **inputs)


def test_each_input_out_of_range_is_refused_naming_its_field():
    for field, values in BAD:
        for value in values:
            try:
                _token(**{field: value})
            except InvalidField as exc:
                name = "DeviceID certificate" if field == "deviceid_certificate" else field
                assert name.replace("_digest", " digest") in exc.reason, exc.reason
            else:
                raise AssertionError("accepted " + field + " = " + repr(value)[:40])


def test_a_certificate_larger_than_any_token_is_too_large():
    try:
        _token(deviceid_certificate=bytes(evidence.MAX_TOKEN + 1))
    except TooLarge as exc:
        assert "token limit" in exc.reason
    else:
        raise AssertionError("accepted a certificate over the token limit")


def test_the_ueid_is_rand_type_over_the_deviceid_point():
    point = b"\x04" + bytes(range(64))
    made = evidence.ueid(point)
    assert len(made) == 33 and made[0] == 1
    assert made == evidence.ueid(bytearray(point))
    for bad in (point[:64], b"\x02" + point[1:], "x" * 65, None):
        try:
            evidence.ueid(bad)
        except InvalidField as exc:
            assert "DeviceID public key" in exc.reason
        else:
            raise AssertionError("accepted " + repr(bad)[:40])
