"""The heatshrink decoder against streams heatshrink2 made, on CPython and MicroPython."""

import io

from device_runtime.core.heatshrink import MAX_READ, HeatshrinkReader, parameter_problem
from tests.device_runtime.core.delta_cases import literals

PORTABLE = True

TEXT = b"abcabcabcabcabcXYZXYZabcabc" * 3 + bytes(40)
COMPRESSED = bytes.fromhex("b0d8ac615d62b35a0894e6bc2f6b2000781e0300")
"""``heatshrink2.compress(TEXT, window_sz2=5, lookahead_sz2=4)``."""


def _decoded(stream, window_sz2, lookahead_sz2, n=MAX_READ):
    reader = HeatshrinkReader(io.BytesIO(stream).read, window_sz2, lookahead_sz2)
    out = []
    while True:
        got = reader.read(n)
        if not got:
            return b"".join(out)
        out.append(got)


def test_a_heatshrink2_stream_decodes():
    assert _decoded(COMPRESSED, 5, 4) == TEXT
    assert _decoded(COMPRESSED, 5, 4, n=3) == TEXT


def test_literals_decode_to_themselves():
    data = bytes(range(256)) * 9
    assert _decoded(literals(data)[1:], 8, 4, n=100) == data


def test_a_back_reference_before_any_output_reads_the_zeroed_window():
    # tag 0, index 3 (distance 4), count 7 (length 8) with an 8-bit window and 3-bit lookahead
    stream = bytes([0b00000001, 0b11110000])
    assert _decoded(stream, 8, 3) == bytes(8)


def test_an_overlapping_back_reference_repeats_its_period():
    # literals "ab", then distance 2, length 8: "abababab"
    bits = "1" + "01100001" + "1" + "01100010" + "0" + "00000001" + "111"
    bits += "0" * (-len(bits) % 8)
    stream = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
    assert _decoded(stream, 8, 3) == b"ab" + b"abababab"


def test_an_operation_the_input_ends_in_is_dropped():
    assert _decoded(COMPRESSED[:-3], 5, 4) == TEXT[: len(_decoded(COMPRESSED[:-3], 5, 4))]
    assert len(_decoded(COMPRESSED[:-3], 5, 4)) < len(TEXT)
    assert _decoded(b"\x80", 8, 4) == b""


def test_parameters_are_bounded():
    for window, lookahead in ((3, 3), (13, 4), (8, 2), (8, 8), (12, 12)):
        assert "heatshrink" in parameter_problem(window, lookahead), (window, lookahead)
        try:
            HeatshrinkReader(io.BytesIO(b"").read, window, lookahead)
        except ValueError:
            pass
        else:
            raise AssertionError((window, lookahead))
    assert parameter_problem(4, 3) == parameter_problem(12, 11) == ""
