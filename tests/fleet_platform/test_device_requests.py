"""The server's end of the protocol: requests tied to their identity and plane, error answers."""

from device_runtime.core import cbor, protocol
from device_runtime.core.errors import IdentityMismatch, InvalidField, TooLarge, UnknownType
from fleet_platform.device_requests import correlation_of, decode_request, error_body
from tests.device_runtime.core.protocol_cases import CID, ENROLL, raises


def test_identity_comes_from_the_certificate() -> None:
    data = protocol.encode("enroll", CID, ENROLL)
    assert decode_request(data, "dev-1").body["device_id"] == "dev-1"
    raises(IdentityMismatch, decode_request, data, "dev-2")
    answer = protocol.encode("enrolled", CID, {"heartbeat_interval": 5, "server_time": 1})
    raises(UnknownType, decode_request, answer, "dev-1")


def test_a_request_is_served_only_on_its_own_plane() -> None:
    challenge = protocol.encode("challenge", CID, {})
    assert decode_request(challenge, "dev-1", "att").kind == "challenge"
    error = raises(UnknownType, decode_request, challenge, "dev-1", "app")
    assert error.reason == "'challenge' is not a request on this topic"
    enroll = protocol.encode("enroll", CID, ENROLL)
    raises(UnknownType, decode_request, enroll, ENROLL["device_id"], "att")


def test_requests_may_be_larger_than_answers() -> None:
    token = {"token": b"t" * protocol.MAX_TOKEN}
    data = protocol.encode("evidence", CID, token)
    assert protocol.MAX_DOWN_MESSAGE < len(data) <= protocol.MAX_MESSAGE
    assert decode_request(data, "dev-1", "att").body == token
    raises(TooLarge, protocol.decode, data, protocol.MAX_DOWN_MESSAGE)


def test_error_body_truncates_long_reasons() -> None:
    body = error_body(InvalidField("x" * 1000))
    assert body["code"] == "bad-field"
    assert len(str(body["reason"])) == protocol.MAX_TEXT
    protocol.encode("error", CID, body)


def test_error_bodies_never_carry_control_characters() -> None:
    body = error_body(InvalidField("line one\nline\x1b[2J two\x85"))
    assert body["reason"] == "line one?line?[2J two?"
    protocol.encode("error", CID, body)


def test_correlation_salvage() -> None:
    assert correlation_of(cbor.dumps({"id": CID, "t": 9})) == CID
    assert correlation_of(cbor.dumps({"id": b"x"})) is None
    assert correlation_of(b"\xff") is None
    assert correlation_of(cbor.dumps([CID])) is None
    assert correlation_of(cbor.dumps({b"v": 1, b"t": "enroll", b"id": CID})) is None
    assert correlation_of(cbor.dumps({7: 1, "id": CID})) == CID
    assert correlation_of(cbor.dumps([[0] * 20] * 4)) is None
    assert correlation_of(b"\x00" * (protocol.MAX_MESSAGE + 1)) is None
