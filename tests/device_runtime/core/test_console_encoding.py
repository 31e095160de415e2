"""The console's two hand-written DER fragments are exactly what the DER encoder writes.

The console matches a certificate's subject and key by their encodings rather
than loading the DER parser (8 KiB of a 64 KiB heap); these must therefore be
the encoder's bytes, for every device id the protocol allows.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from device_runtime.core import console, der, protocol
from device_runtime.core.errors import InvalidField

DEVICE_IDS = st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True)


@given(DEVICE_IDS)
def test_the_subject_is_the_encoders(device_id: str) -> None:
    assert console._subject(device_id) == der.name((der.OID_COMMON_NAME, device_id))


def test_the_key_info_is_the_encoders() -> None:
    point = b"\x04" + bytes(range(1, 65))
    assert console._spki(point) == der.ec_public_key_info(point)


@given(st.text(alphabet="abz09-_A. ", max_size=70) | DEVICE_IDS | st.just("sevenfold-server"))
def test_the_console_allows_exactly_the_device_ids_the_protocol_allows(device_id: str) -> None:
    try:
        protocol.check_device_id(device_id)
        allowed = True
    except InvalidField:
        allowed = False
    try:
        console._check_device_id(device_id)
        accepted = True
    except console.ConsoleError:
        accepted = False
    assert accepted == allowed, device_id
