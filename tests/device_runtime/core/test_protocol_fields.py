"""Field rules of the protocol schemas, the envelope's key types and its limits.

Separate from test_protocol.py so that each module, run under MicroPython
with a 64 KiB heap, leaves room for what its tests build.
"""

import gc

from device_runtime.core import cbor, protocol
from device_runtime.core.errors import InvalidField, TooLarge, UnknownType, UnsupportedVersion
from tests.device_runtime.core.protocol_cases import CID, ENROLL, raises

PORTABLE = True


def _envelope(kind, body, version=1):
    return cbor.dumps({"v": version, "t": kind, "id": CID, "b": body})


def test_counters_stop_where_signed_64_bit_storage_does():
    assert protocol.MAX_COUNTER == 2**63 - 1
    top = {"seq": protocol.MAX_COUNTER, "uptime": protocol.MAX_COUNTER, "boot_count": 0}
    assert protocol.decode(_envelope("heartbeat", top)).body == top
    for field in ("seq", "uptime"):
        over = dict(top)
        over[field] = protocol.MAX_COUNTER + 1
        raises(InvalidField, protocol.encode, "heartbeat", CID, over)
        error = raises(InvalidField, protocol.decode, _envelope("heartbeat", over))
        assert error.reason == "heartbeat." + field + " is out of range (0 to 9223372036854775807)"
    ack = {"seq": protocol.MAX_COUNTER + 1, "server_time": 0}
    raises(InvalidField, protocol.decode, _envelope("heartbeat-ack", ack))


def test_true_is_not_version_1():
    for version in (True, False, b"\x01", "1", [1]):
        error = raises(UnsupportedVersion, protocol.decode, _envelope("enroll", ENROLL, version))
        assert "is not 1" in error.reason
    assert protocol.decode(_envelope("enroll", ENROLL, 1)).kind == "enroll"


def test_root_of_trust_is_one_the_protocol_knows():
    for rot in protocol.ROOTS_OF_TRUST:
        body = dict(ENROLL)
        body["rot"] = rot
        assert protocol.decode(protocol.encode("enroll", CID, body)).body["rot"] == rot
    body = dict(ENROLL)
    body["rot"] = "hsm"
    raises(InvalidField, protocol.encode, "enroll", CID, body)
    error = raises(InvalidField, protocol.decode, _envelope("enroll", body))
    assert error.reason == "enroll.rot must be one of software, tpm, dice"


def test_heartbeat_interval_is_at_least_one_second():
    for good in (1, 30, protocol.MAX_HEARTBEAT_INTERVAL):
        body = {"heartbeat_interval": good, "server_time": 0}
        assert protocol.decode(_envelope("enrolled", body)).body == body
    for bad in (0, protocol.MAX_HEARTBEAT_INTERVAL + 1):
        body = {"heartbeat_interval": bad, "server_time": 0}
        raises(InvalidField, protocol.encode, "enrolled", CID, body)
        error = raises(InvalidField, protocol.decode, _envelope("enrolled", body))
        assert error.reason == "enrolled.heartbeat_interval is out of range (1 to 86400)"


CONTROL = ("\x00", "\x07", "\n", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9b", "\x9f")
VALID = {
    "enroll": ENROLL,
    "error": {"code": "busy", "reason": "try later", "retry_after": 5},
    "attested": {"status": "warning", "code": "ok", "reason": "config not endorsed"},
    # Declared only where device_runtime.core.update_status was imported (a server, pytest).
    "update-status": {
        "state": "failed",
        "from_version": "1.0.0",
        "to_version": "1.1.0",
        "target": "board/fw.img",
        "reason": "hash mismatch",
        "boot_count": 1,
        "seq": 1,
    },
    # Likewise device_runtime.core.failure_report (its request carries bytes only).
    "failure-report-ack": {
        "settled": b"",
        "recorded": 0,
        "repeated": 0,
        "refused": 1,
        "reason": "malformed",
    },
}


def test_control_characters_are_refused_in_every_text_field():
    checked = 0
    for kind in protocol.SCHEMAS:
        schema = protocol.SCHEMAS[kind]
        for at in range(0, len(schema), protocol.FIELD):
            name = schema[at]
            if schema[at + 1] is not str:
                continue
            for char in CONTROL:
                gc.collect()  # each refusal leaves an exception behind: a 64 KiB heap fragments
                body = dict(VALID[kind])
                body[name] = "ab" + char
                raises(InvalidField, protocol.encode, kind, CID, body)
                error = raises(InvalidField, protocol.decode, _envelope(kind, body))
                assert error.reason == kind + "." + name + " has a control character at index 2"
            checked += 1
    optional = {"update-status": 5, "failure-report-ack": 1}
    assert checked == 10 + sum(n for kind, n in optional.items() if kind in protocol.SCHEMAS)


def test_printable_text_beyond_ascii_is_kept():
    body = dict(VALID["error"])
    body["reason"] = "caf\u00e9 \u00a0\u6c34 \U0001f600 ~"
    assert protocol.decode(protocol.encode("error", CID, body)).body == body


def test_keys_that_are_not_text_are_refused_before_any_lookup():
    # Lookups that meet a byte string where text is expected warn on
    # MicroPython's console, so these are refused by type first.
    bad_envelope = cbor.dumps({b"v": 1, b"t": "enroll", b"id": CID, b"b": ENROLL})
    error = raises(InvalidField, protocol.decode, bad_envelope)
    assert error.reason.startswith("envelope: key b'"), error.reason
    assert error.reason.endswith("' is not text"), error.reason
    error = raises(InvalidField, protocol.decode, _envelope("heartbeat", {b"seq": 1}))
    assert error.reason == "heartbeat: key b'seq' is not text"
    error = raises(InvalidField, protocol.decode, _envelope("heartbeat", {1: 1}))
    assert error.reason == "heartbeat: key 1 is not text"


def test_reasons_quote_a_peers_values_briefly():
    error = raises(UnknownType, protocol.decode, _envelope("x" * 300, {}))
    assert error.reason == "unknown message type '" + "x" * 32 + "'..."
    error = raises(UnsupportedVersion, protocol.decode, _envelope("enroll", {}, [0] * 20))
    assert error.reason == "protocol version a value of type list is not 1"
    message = {"v": 1, "t": "enroll", "id": CID, "b": ENROLL, "\x1b[2J" * 20: 0}
    error = raises(InvalidField, protocol.decode, cbor.dumps(message))
    assert error.reason == "unexpected envelope field '" + "\\x1b[2J" * 8 + "'..."


def test_limits_are_checked_before_and_while_decoding():
    raises(TooLarge, protocol.decode, b"\x00" * (protocol.MAX_MESSAGE + 1))
    deep = b"\x81" * (protocol.MAX_DEPTH + 1) + b"\x00"
    error = raises(TooLarge, protocol.decode, deep)
    assert error.reason == "nesting deeper than 16 at offset 16"
    wide = cbor.dumps([0] * (protocol.MAX_ITEMS + 1))
    assert raises(TooLarge, protocol.decode, wide).reason.endswith("limit 32")
    many = cbor.dumps([[0] * 20] * 4)
    error = raises(TooLarge, protocol.decode, many)
    assert error.reason == "data item budget of 64 exceeded by the head at offset 43"


def test_byte_fields_are_byte_strings_of_their_sizes():
    nonce = b"n" * protocol.NONCE_BYTES
    body = {"nonce": nonce, "expires_in": 60}
    assert protocol.decode(_envelope("challenge-issued", body)).body == body
    for bad, error_type, reason in (
        ("n" * 32, InvalidField, "challenge-issued.nonce must be a byte string"),
        (nonce[:-1], InvalidField, "challenge-issued.nonce is shorter than 32 bytes"),
        (nonce + b"n", TooLarge, "challenge-issued.nonce is longer than 32 bytes"),
    ):
        wrong = {"nonce": bad, "expires_in": 60}
        raises(error_type, protocol.encode, "challenge-issued", CID, wrong)
        assert raises(error_type, protocol.decode, _envelope("challenge-issued", wrong)).reason == (
            reason
        )
    token = {"token": b"t" * (protocol.MAX_TOKEN + 1)}
    raises(TooLarge, protocol.decode, _envelope("evidence", token))
