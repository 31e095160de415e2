"""Garbage, floods and failing ports on the provisioning console, under CPython and MicroPython."""

from device_runtime.core.console import MAX_REQUEST, ConsoleError, LineBuffer, parse_request
from tests.device_runtime.core.console_cases import ask, error_code, new_console

PORTABLE = True


def test_garbage_gets_a_specific_error_and_the_console_keeps_serving():
    console = new_console()
    cases = (
        (b"\x00\xff\x1b[2J", "bad-request"),
        (b"hello  world", "bad-request"),
        (b"", "bad-request"),
        (b"reboot-now", "unknown-command"),
        (b"hello extra", "bad-args"),
        (b"csr", "bad-args"),
        (b"activate abc def", "unsupported"),
        (b"a b c d e f", "bad-request"),
    )
    for line, expected in cases:
        assert error_code(ask(console, line)) == expected, line
    assert ask(console, b"hello").startswith("ok ")


def test_bad_base64_and_ports_are_bad_args():
    console = new_console("tpm")
    assert error_code(ask(console, b"activate abc= ====")) == "bad-args"
    assert error_code(ask(console, b"activate a-b_ abcd")) == "bad-args"
    ask(console, b"csr board-a-0042")
    for line in (b"put broker h 0", b"put broker h 65536", b"put broker h -1", b"put key abcd"):
        assert error_code(ask(console, line)) == "bad-args", line


def test_an_oversized_line_is_dropped_and_answered_once():
    console = new_console()
    chunk = b"x" * 256  # a serial port delivers a flood a little at a time
    answers = b""
    for _ in range(MAX_REQUEST // 256 + 4):
        answers += console.feed(chunk)
    assert answers.startswith(b"err too-long") and answers.count(b"\n") == 1
    assert console.feed(chunk + b"\nhello\n").startswith(b"ok ")
    for _ in range(MAX_REQUEST // 256):
        assert console.feed(chunk) == b""
    assert console.feed(b"\n").startswith(b"err unknown-command")


def test_a_truncated_line_is_completed_by_the_next_bytes():
    console = new_console()
    assert console.feed(b"hel") == b""
    assert console.feed(b"lo\r\n").startswith(b"ok sevenfold-console")


def test_root_of_trust_failures_are_reported_with_their_code():
    console = new_console()
    console.rot.fail = True
    assert error_code(ask(console, b"csr board-a-0042")) == "root-of-trust"


def test_line_buffer_bounds_memory():
    buffer = LineBuffer(limit=8)
    assert buffer.feed(b"12345678\n") == [b"12345678"]
    assert buffer.feed(b"123456789abc\nok\n") == [None, b"ok"]


def test_parse_request_refuses_what_is_not_printable_ascii():
    for line in (b"\xc3\xa9", b"a\tb", b"\x7f"):
        try:
            parse_request(line)
        except ConsoleError as exc:
            assert exc.code == "bad-request"
        else:
            raise AssertionError(line)
