"""Hypothesis against the console's request parser and line buffer: a ConsoleError or words."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core.console import (
    MAX_REQUEST,
    MAX_TOKENS,
    Console,
    ConsoleError,
    LineBuffer,
    decode_b64,
    encode_b64,
    parse_request,
)
from tests.device_runtime.core.console_cases import MemoryStore, StandInRoot

WORD = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


@settings(max_examples=300)
@given(st.binary(max_size=MAX_REQUEST + 64))
def test_any_line_parses_or_is_refused_with_a_code(line: bytes) -> None:
    try:
        words = parse_request(line)
    except ConsoleError as exc:
        assert exc.code in {"too-long", "bad-request"}
    else:
        assert 1 <= len(words) <= MAX_TOKENS and " ".join(words).encode() == line


@given(st.lists(WORD, min_size=1, max_size=MAX_TOKENS))
def test_well_formed_requests_round_trip(words: list[str]) -> None:
    assert parse_request(" ".join(words).encode()) == words


@given(st.binary(max_size=300))
def test_base64_round_trips_and_only_canonical_text_decodes(data: bytes) -> None:
    assert decode_b64(encode_b64(data)) == data


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=700), max_size=8))
def test_the_console_answers_every_line_of_any_stream_with_ok_or_err(chunks: list[bytes]) -> None:
    console = Console(rot=StandInRoot(), store=MemoryStore(), hwmodel="m", serial="1")
    expected = LineBuffer()
    lines = sum((len(expected.feed(chunk)) for chunk in chunks), 0)
    answers = b"".join(console.feed(chunk) for chunk in chunks).split(b"\n")[:-1]
    assert len(answers) == lines
    assert all(answer.startswith((b"ok", b"err ")) for answer in answers)
