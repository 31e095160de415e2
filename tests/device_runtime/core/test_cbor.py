"""The CBOR codec, checked the same way under CPython (pytest) and MicroPython (the runner).

Plain functions and ``assert`` only, so that the real MicroPython with a 64 KiB
heap runs exactly these checks against exactly the module the device imports.
"""

from device_runtime.core.cbor import Tag, dumps, loads
from device_runtime.core.errors import DecodeError, ProtocolError, TooLarge

PORTABLE = True

# RFC 8949 Appendix A, the part of it the protocol supports.
APPENDIX_A = (
    ("00", 0),
    ("01", 1),
    ("0a", 10),
    ("17", 23),
    ("1818", 24),
    ("1819", 25),
    ("1864", 100),
    ("1903e8", 1000),
    ("1a000f4240", 1000000),
    ("1b000000e8d4a51000", 1000000000000),
    ("1bffffffffffffffff", 18446744073709551615),
    ("3bffffffffffffffff", -18446744073709551616),
    ("20", -1),
    ("29", -10),
    ("3863", -100),
    ("3903e7", -1000),
    ("f4", False),
    ("f5", True),
    ("f6", None),
    ("40", b""),
    ("4401020304", b"\x01\x02\x03\x04"),
    ("60", ""),
    ("6161", "a"),
    ("6449455446", "IETF"),
    ("62225c", '"\\'),
    ("62c3bc", "\u00fc"),
    ("63e6b0b4", "\u6c34"),
    ("64f0908591", "\U00010151"),
    ("80", []),
    ("83010203", [1, 2, 3]),
    ("8301820203820405", [1, [2, 3], [4, 5]]),
    (
        "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
        list(range(1, 26)),
    ),
    ("a0", {}),
    ("a201020304", {1: 2, 3: 4}),
    ("a26161016162820203", {"a": 1, "b": [2, 3]}),
    ("826161a161626163", ["a", {"b": "c"}]),
    (
        "a56161614161626142616361436164614461656145",
        {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
    ),
    ("c074323031332d30332d32315432303a30343a30305a", Tag(0, "2013-03-21T20:04:00Z")),
    ("c11a514b67b0", Tag(1, 1363896240)),
    ("d74401020304", Tag(23, b"\x01\x02\x03\x04")),
    ("d818456449455446", Tag(24, b"dIETF")),
    (
        "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
        Tag(32, "http://www.example.com"),
    ),
)


def _h(text):
    return bytes.fromhex(text)


def _rejects(data, error, fragment, max_depth=16, max_items=4096):
    """Decoding *data* raises exactly *error*, with *fragment* in its reason."""
    try:
        value = loads(data, max_depth, max_items)
    except ProtocolError as exc:
        assert type(exc) is error, (data, exc)
        assert fragment in exc.reason, (data, exc.reason)
        return
    raise AssertionError(f"accepted {data!r} as {value!r}")


def _encode_fails(value):
    try:
        dumps(value)
    except (TypeError, ValueError):
        return
    raise AssertionError(f"encoded {value!r}")


def test_appendix_a_vectors_encode_to_the_rfc_bytes():
    for text, value in APPENDIX_A:
        assert dumps(value) == _h(text), (text, dumps(value).hex())


def test_appendix_a_vectors_decode_to_the_rfc_values():
    for text, value in APPENDIX_A:
        decoded = loads(_h(text))
        assert decoded == value, (text, decoded)
        assert type(decoded) is type(value), text


def test_cose_and_cwt_tags_round_trip():
    sign1 = Tag(18, [b"\xa1\x01\x26", {}, b"payload", b"\x00" * 64])
    assert dumps(sign1)[:2] == b"\xd2\x84"
    assert loads(dumps(sign1)) == sign1
    cwt = Tag(61, sign1)
    assert dumps(cwt)[:3] == b"\xd8\x3d\xd2"
    assert loads(dumps(cwt)) == cwt


def test_tag_equality_and_repr():
    assert Tag(18, [1]) == Tag(18, [1])
    assert Tag(18, [1]) != Tag(61, [1])
    assert Tag(18, [1]) != Tag(18, [2])
    assert Tag(18, 1) != 1
    assert repr(Tag(61, b"\x01")) == "Tag(61, b'\\x01')"


def test_tuples_and_bytearrays_encode_like_lists_and_bytes():
    assert dumps((1, (2,))) == dumps([1, [2]])
    assert dumps(bytearray(b"ab")) == dumps(b"ab")


def test_integer_heads_switch_width_at_the_boundaries():
    for value, text in (
        (23, "17"),
        (255, "18ff"),
        (256, "190100"),
        (65535, "19ffff"),
        (65536, "1a00010000"),
        (4294967295, "1affffffff"),
        (4294967296, "1b0000000100000000"),
        (-24, "37"),
        (-25, "3818"),
        (-257, "390100"),
    ):
        assert dumps(value) == _h(text), value
        assert loads(_h(text)) == value, value


def test_map_keys_are_sorted_bytewise_by_encoding():
    value = {"aa": 6, -1: 4, "a": 1, 256: 2, 100: 7, 10: 5}
    expected = "a6" + "0a05" + "186407" + "19010002" + "2004" + "616101" + "62616106"
    assert dumps(value) == _h(expected)
    assert dumps({b"bb": 1, 0: 2, b"a": 3}) == _h("a3" + "0002" + "416103" + "42626201")


def test_encoding_does_not_depend_on_insertion_order():
    first = {"z": 1, "a": {2: b"x", 1: b"y"}, 3: None}
    second = {3: None, "a": {1: b"y", 2: b"x"}, "z": 1}
    assert dumps(first) == dumps(second)


def test_values_outside_the_protocol_are_not_encoded():
    for value in (
        1.5,
        2**64,
        -(2**64) - 1,
        {1, 2},
        object(),
        {1.5: 1},
        {True: 1},
        {None: 1},
        {(1,): 1},
        [1, 2.5],
        Tag(-1, 0),
        Tag(2**64, 0),
        Tag(True, 0),
        Tag("18", 0),
    ):
        _encode_fails(value)


def test_any_map_key_order_is_accepted_on_decode():
    assert loads(_h("a26161010102")) == {"a": 1, 1: 2}
    assert loads(_h("a2190100020a05")) == {256: 2, 10: 5}


def test_a_map_mixing_byte_string_and_text_keys_is_rejected():
    _rejects(_h("a2416101616102"), DecodeError, "map at offset 0 mixes byte-string and text keys")
    _rejects(_h("a3616101000241620a"), DecodeError, "(key at offset 6)")
    _rejects(_h("82a0a24001616102"), DecodeError, "map at offset 2 mixes")
    assert loads(_h("a2416101000a")) == {b"a": 1, 0: 10}
    assert loads(_h("a2616101000a")) == {"a": 1, 0: 10}


def test_unknown_tags_decode_generically():
    assert loads(_h("c249010000000000000000")) == Tag(2, _h("010000000000000000"))
    assert loads(_h("dbffffffffffffffff00")) == Tag(18446744073709551615, 0)


def test_bytearray_and_memoryview_input():
    assert loads(bytearray(b"\x82\x01\x02")) == [1, 2]
    assert loads(memoryview(b"\x82\x01\x02")) == [1, 2]


def test_input_that_is_not_bytes_is_a_programming_error():
    for value in ("\x00", 0, None, [0]):
        try:
            loads(value)
        except TypeError:
            continue
        raise AssertionError(f"accepted {value!r}")


def test_errors_carry_their_wire_codes():
    for data, code in ((b"\x18", "bad-cbor"), (b"\x9a\x00\x01\x00\x00", "too-large")):
        try:
            loads(data)
        except ProtocolError as exc:
            assert exc.code == code
            assert exc.explain().startswith(code + ": ")
            continue
        raise AssertionError(data)


def test_empty_and_truncated_input():
    _rejects(b"", DecodeError, "truncated at offset 0")
    for text in ("18", "1900", "1a000000", "1b00000000000000", "38", "d9", "f8"):
        _rejects(_h(text), DecodeError, "truncated at offset 0")
    _rejects(_h("820118"), DecodeError, "truncated at offset 2")
    _rejects(_h("c1"), DecodeError, "truncated at offset 1")
    _rejects(_h("a2010219ff"), DecodeError, "truncated at offset 3")


def test_every_prefix_of_a_valid_message_is_rejected():
    message = dumps({"id": 7, "n": -300, "blob": b"\x00" * 70, "t": Tag(18, ["\u6c34", [1, {}]])})
    for end in range(len(message)):
        try:
            loads(message[:end])
        except (DecodeError, TooLarge):
            continue
        raise AssertionError(f"prefix of {end} bytes accepted")


def test_trailing_bytes():
    _rejects(_h("0000"), DecodeError, "trailing bytes: 1 after the item that ends at offset 1")
    _rejects(_h("80ff"), DecodeError, "trailing bytes")


def test_non_shortest_heads_are_rejected():
    for text in (
        "1800",
        "1817",
        "1900ff",
        "1a0000ffff",
        "1b00000000ffffffff",
        "3817",
        "5801ff",
        "780161",
        "980100",
        "b8010000",
        "d80100",
    ):
        _rejects(_h(text), DecodeError, "non-shortest encoding")


def test_reserved_additional_info():
    for major in range(7):
        for info in (28, 29, 30):
            _rejects(bytes([(major << 5) | info]), DecodeError, "reserved additional info")
    for text in ("fc", "fd", "fe", "1f", "3f", "df"):
        _rejects(_h(text), DecodeError, "reserved additional info")


def test_indefinite_lengths_are_rejected():
    for text in ("5f41014102ff", "7f6161ff", "9f01ff", "bf0101ff"):
        _rejects(_h(text), DecodeError, "indefinite length not allowed")
    _rejects(_h("ff"), DecodeError, "unexpected break")
    _rejects(_h("81ff"), DecodeError, "unexpected break at offset 1")


def test_invalid_utf8_is_rejected():
    for text in (
        "61ff",
        "6180",
        "62c080",
        "62c1bf",
        "63e08080",
        "63eda080",
        "63edbfbf",
        "64f08f8080",
        "64f4908080",
        "64f8888080",
        "62e282",
        "63e28220",
        "62c341",
    ):
        _rejects(_h(text), DecodeError, "invalid UTF-8 in text string at offset 0")


def test_utf8_boundaries_round_trip():
    for char in ("\x7f", "\x80", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff"):
        assert loads(dumps(char)) == char
    for char in ("\U00010000", "\U0010ffff"):
        assert loads(dumps(char)) == char
    assert dumps("\U0010ffff") == _h("64f48fbfbf")


def test_duplicate_map_keys():
    _rejects(_h("a201010102"), DecodeError, "duplicate map key at offset 3")
    _rejects(_h("a2616101616102"), DecodeError, "duplicate map key at offset 4")
    _rejects(_h("a2400140f6"), DecodeError, "duplicate map key")


def test_map_keys_of_unsupported_types():
    for text in ("a18001", "a1a001", "a1f501", "a1f601", "a1c10001", "a1f90000"):
        _rejects(_h(text), DecodeError, "map key at offset 1")


def test_floats_are_not_part_of_the_protocol():
    for text in ("f90000", "f97c00", "fa47c35000", "fb3ff199999999999a", "f9"):
        _rejects(_h(text), DecodeError, "floats are not part of the protocol")


def test_undefined_and_other_simple_values():
    _rejects(_h("f7"), DecodeError, "undefined")
    for text in ("e0", "f0", "f3", "f8ff", "f820", "f813"):
        _rejects(_h(text), DecodeError, "simple value")


def _nested(levels, opener):
    return bytes([opener]) * levels + b"\x00"


def test_nesting_up_to_max_depth_is_accepted():
    assert loads(_nested(16, 0x81)) is not None
    assert loads(_nested(16, 0xC1)) is not None
    assert loads(_h("a101" * 15 + "8100")) is not None
    assert loads(_nested(4, 0x81), max_depth=4) == [[[[0]]]]


def test_nesting_beyond_max_depth_is_too_large():
    _rejects(_nested(17, 0x81), TooLarge, "nesting deeper than 16 at offset 16")
    _rejects(_nested(17, 0xC1), TooLarge, "nesting deeper than 16")
    _rejects(_h("a101" * 16 + "8100"), TooLarge, "nesting deeper than 16")
    _rejects(_nested(5, 0x81), TooLarge, "nesting deeper than 4", max_depth=4)
    _rejects(_nested(200, 0x81), TooLarge, "nesting deeper than 16")


def test_containers_over_max_items_are_too_large():
    _rejects(_h("9a00010000"), TooLarge, "claims 65536 entries, limit 4096")
    _rejects(_h("83010203"), TooLarge, "claims 3 entries, limit 2", max_items=2)
    _rejects(_h("a2010203") + b"\x04", TooLarge, "claims 2 entries, limit 1", max_items=1)


def test_strings_are_bounded_by_the_input_not_by_max_items():
    assert loads(_h("43010203"), max_items=2) == b"\x01\x02\x03"
    assert loads(_h("63616263"), max_items=2) == "abc"


def test_claims_beyond_the_remaining_input_are_truncation_before_allocating():
    huge = 2**64 - 1
    for text in (
        "5bffffffffffffffff",
        "7bffffffffffffffff",
        "9bffffffffffffffff00",
        "bbffffffffffffffff0000",
    ):
        _rejects(_h(text), DecodeError, "truncated at offset 0", max_items=huge)
    _rejects(_h("5a7fffffff00"), DecodeError, "but only 1 are left", max_items=huge)
    _rejects(_h("8301"), DecodeError, "claims 3 entries but only 1 bytes are left")
    _rejects(_h("a20101"), DecodeError, "claims 2 entries but only 2 bytes are left")


def test_every_single_byte_input_is_decoded_or_rejected_cleanly():
    accepted = 0
    for initial in range(256):
        try:
            loads(bytes([initial]))
            accepted += 1
        except (DecodeError, TooLarge):
            pass
    assert accepted == 24 + 24 + 1 + 1 + 1 + 1 + 3
