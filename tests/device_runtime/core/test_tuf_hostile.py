"""Hostile input to the device's TUF client: whatever the bytes, a TufError with a reason.

Canonical JSON is checked against securesystemslib's encoder, the delegation
matcher against ``fnmatch.fnmatchcase``, the verifiers against OpenSSL; the
metadata parser gets random bytes, truncations and documents with a field
deleted or retyped, and must answer each with ``TufError`` (never another
exception) naming what is wrong.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.formats import encode_canonical

from device_runtime.core import ed25519 as pure_ed25519
from device_runtime.core import rsa_pss, sha512
from device_runtime.core.errors import CryptoError
from device_runtime.core.tuf import canonical_json, delegations, keys, names
from device_runtime.core.tuf.error import TufError
from device_runtime.core.tuf.metadata import Metadata, unix_time
from device_runtime.ports.cpython import crypto

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def _reference(value: Any) -> bytes:
    encoded = encode_canonical(value)
    assert isinstance(encoded, str)
    return encoded.encode()


def _canonical(value: object) -> bytes:
    sink = canonical_json.Collector()
    canonical_json.encode(value, sink)
    return bytes(sink.data)


@settings(max_examples=300)
@given(json_values)
def test_canonical_json_is_securesystemslibs(value: object) -> None:
    assert _canonical(value) == _reference(value)


@pytest.mark.parametrize("value", [1.5, {"a": float("nan")}, [b"x"], {1: 2}, [[[[]]]] * 1])
def test_canonical_json_refuses_what_has_no_form(value: object) -> None:
    if value == [[[[]]]]:
        assert _canonical(value) == b"[[[[]]]]"
        return
    with pytest.raises(TufError) as raised:
        _canonical(value)
    assert raised.value.code == "bad-metadata"


def test_canonical_json_refuses_deep_nesting() -> None:
    value: list[Any] = []
    for _ in range(40):
        value = [value]
    with pytest.raises(TufError, match="nests deeper"):
        _canonical(value)


@settings(max_examples=500)
@given(st.text("ab*?[]!-c", max_size=8), st.text("abc-]![", max_size=6))
def test_segment_matching_is_fnmatchcase(pattern: str, name: str) -> None:
    assert delegations.segment_matches(name, pattern) == fnmatch.fnmatchcase(name, pattern)


def test_paths_match_segment_by_segment_and_hash_prefixes() -> None:
    assert delegations.path_matches("a/b.txt", "a/*.txt")
    assert not delegations.path_matches("a/b/c.txt", "a/*.txt")
    digest = hashlib.sha256(b"file").hexdigest()
    roles: list[dict[str, object]] = [
        {"name": "p", "terminating": True, "path_hash_prefixes": [digest[:2]]},
        {"name": "q", "terminating": False, "paths": ["f*"]},
        {"name": "none", "terminating": False},
    ]
    assert delegations.roles_for_target(roles, "file") == [("p", True), ("q", False)]


@given(st.text(max_size=20))
def test_quoted_names_stay_one_file(name: str) -> None:
    quoted = names.file_name(name)
    assert "/" not in quoted and not quoted.startswith(".")
    assert names.quote(name) == __import__("urllib.parse").parse.quote(name, safe="")


@pytest.mark.parametrize("size", [0, 1, 111, 112, 127, 128, 129, 1000])
def test_pure_sha512_is_hashlibs(size: int) -> None:
    data = bytes(range(256)) * 4
    assert sha512.Sha512(data[:size]).digest() == hashlib.sha512(data[:size]).digest()


def test_ed25519_and_rsa_pss_verify_what_openssl_signs() -> None:
    message = b"signed bytes"
    edkey = ed25519.Ed25519PrivateKey.generate()
    public = edkey.public_key().public_bytes_raw()
    signature = edkey.sign(message)
    pure_ed25519.verify(public, signature, lambda sink: sink.update(message))
    for bad in (signature[:-1] + bytes([signature[-1] ^ 1]), signature[:32] + bytes(32)):
        with pytest.raises(CryptoError):
            pure_ed25519.verify(public, bad, lambda sink: sink.update(message))
    rsakey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = rsakey.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature = rsakey.sign(message, pss, hashes.SHA256())
    rsa_pss.verify_digest(spki, hashlib.sha256(message).digest(), signature)
    with pytest.raises(CryptoError):
        rsa_pss.verify_digest(spki, hashlib.sha256(b"other").digest(), signature)


def _signed_root() -> tuple[bytes, dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyid = "ab" * 32
    role = {"keyids": [keyid], "threshold": 1}
    signed: dict[str, Any] = {
        "_type": "root",
        "spec_version": "1.0.31",
        "version": 1,
        "expires": "2030-01-01T00:00:00Z",
        "consistent_snapshot": True,
        "keys": {
            keyid: {
                "keytype": "ecdsa",
                "scheme": "ecdsa-sha2-nistp256",
                "keyval": {"public": pem.decode()},
            }
        },
        "roles": {name: dict(role) for name in ("root", "snapshot", "targets", "timestamp")},
    }
    signature = key.sign(_reference(signed), ec.ECDSA(hashes.SHA256()))
    document = {"signed": signed, "signatures": [{"keyid": keyid, "sig": signature.hex()}]}
    return json.dumps(document).encode(), document


ROOT, ROOT_DOCUMENT = _signed_root()


def test_a_valid_root_parses_and_verifies_by_itself() -> None:
    root = Metadata(ROOT, "root")
    assert root.version == 1
    assert root.expires == int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    roles = root.signed["roles"]
    assert isinstance(roles, dict)
    root.verify_by(root.signed, roles["root"], crypto)
    assert Metadata(io.BytesIO(ROOT), "root").version == 1


def test_a_tampered_root_misses_its_threshold() -> None:
    document = copy.deepcopy(ROOT_DOCUMENT)
    document["signed"]["version"] = 2
    root = Metadata(json.dumps(document).encode(), "root")
    with pytest.raises(TufError) as raised:
        root.verify_by(root.signed, document["signed"]["roles"]["root"], crypto)
    assert raised.value.code == "threshold"


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_are_refused_as_bad_metadata(data: bytes) -> None:
    with pytest.raises(TufError) as raised:
        Metadata(data, "root")
    assert raised.value.code == "bad-metadata" and raised.value.reason


@settings(max_examples=200)
@given(st.integers(0, len(ROOT) - 1))
def test_truncated_metadata_is_bad_metadata(end: int) -> None:
    with pytest.raises(TufError, match=r"not valid JSON|not a JSON object"):
        Metadata(ROOT[:end], "root")


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


ROOT_PATHS = _paths(ROOT_DOCUMENT)
WRONG_VALUES = [None, True, 0, -1, 1.5, "x", "", [], {}, [None], {"": None},
                # Unicode digits (int() refuses or misreads them) and a lone surrogate
                # (UTF-8 cannot encode it): refused, never a ValueError or UnicodeError.
                "\u00b2", "1.0.\u0663", "\u00b2030-01-01T00:00:00Z", "\ud800"]  # fmt: skip


@settings(max_examples=400)
@given(st.sampled_from(ROOT_PATHS), st.sampled_from([*WRONG_VALUES, "delete"]))
def test_a_field_deleted_or_retyped_is_refused_or_harmless(
    path: tuple[object, ...], replacement: object
) -> None:
    document = copy.deepcopy(ROOT_DOCUMENT)
    parent: Any = document
    for step in path[:-1]:
        parent = parent[step]
    if replacement == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    try:
        root = Metadata(json.dumps(document).encode(), "root")
    except TufError as exc:
        assert exc.code == "bad-metadata" and exc.reason
        return
    roles = root.signed["roles"]
    assert isinstance(roles, dict)
    try:
        root.verify_by(root.signed, roles["root"], crypto)
    except TufError as exc:
        assert exc.code == "threshold"


@pytest.mark.parametrize(
    ("stamp", "valid"),
    [
        ("2030-01-01T00:00:00Z", True),
        ("\u00b2030-01-01T00:00:00Z", False),
        ("2030-01-0\u0661T00:00:00Z", False),
        ("2024-02-29T23:59:59Z", True),
        ("2023-02-29T00:00:00Z", False),
        ("2030-13-01T00:00:00Z", False),
        ("2030-01-01T24:00:00Z", False),
        ("2030-01-01 00:00:00Z", False),
        ("2030-01-01T00:00:00", False),
        ("+030-01-01T00:00:00Z", False),
    ],
)
def test_expiry_stamps(stamp: str, valid: bool) -> None:
    if valid:
        expected = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert unix_time(stamp) == int(expected.timestamp())
    else:
        with pytest.raises(TufError, match="expires"):
            unix_time(stamp)


@pytest.mark.parametrize(
    "key",
    [
        {"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": "nope"}},
        {"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {}},
        {"keytype": "rsa", "scheme": "rsassa-pss-sha256", "keyval": {"public": 5}},
        {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "zz"}},
        {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "00" * 32}},
        {"keytype": "x", "scheme": "y", "keyval": {"public": "00"}},
    ],
)
def test_unusable_keys_never_count(key: dict[str, object]) -> None:
    digest = hashlib.sha256(b"{}").digest()
    assert not keys.signature_valid(key, "00" * 64, {}, digest, crypto)
    assert not keys.signature_valid(key, "not hex", {}, digest, crypto)


RSA_KEYS = [rsa.generate_private_key(public_exponent=65537, key_size=bits) for bits in (2048, 4096)]


@pytest.mark.parametrize("key", RSA_KEYS, ids=["2048", "4096"])
def test_rsa_key_numbers_are_openssls(key: rsa.RSAPrivateKey) -> None:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    numbers = key.public_key().public_numbers()
    assert rsa_pss.public_numbers(spki)[:2] == (numbers.n, numbers.e)


@settings(max_examples=400)
@given(st.integers(0, 293), st.integers(0, 255))
def test_a_changed_rsa_key_byte_is_refused_or_read(index: int, value: int) -> None:
    spki = bytearray(
        RSA_KEYS[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    spki[index] = value
    try:
        rsa_pss.public_numbers(bytes(spki))
    except CryptoError as exc:
        assert exc.reason


@given(st.binary(max_size=64))
def test_random_rsa_keys_are_refused(data: bytes) -> None:
    with pytest.raises(CryptoError):
        rsa_pss.public_numbers(data)
