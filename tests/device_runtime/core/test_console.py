"""The provisioning console's device side, checked under CPython and MicroPython at 64 KiB.

A stand-in root of trust answers with fixed public material, so these checks
are about the line protocol and the all-or-nothing install, not about keys.
"""

import gc

from device_runtime.core.console import (
    BANNER,
    decode_b64,
    encode_b64,
    read_installed,
)
from tests.device_runtime.core.console_cases import (
    CERT,
    POINT,
    MemoryStore,
    ask,
    error_code,
    new_console,
)

PORTABLE = True


def test_hello_names_version_kind_model_serial_and_state():
    words = ask(new_console(), b"hello").split(" ")
    assert words[:3] == ["ok", "sevenfold-console", "1"]
    assert "kind=software" in words and "hwmodel=board-a" in words
    assert "serial=0042" in words and words[-1] == "state=new"


def test_csr_returns_the_root_of_trusts_request_in_base64():
    answer = ask(new_console(), b"csr board-a-0042")
    assert decode_b64(answer.split(" ")[1]) == b"csr:board-a-0042" + POINT


def test_nothing_is_stored_until_install_has_everything():
    store = MemoryStore()
    console = new_console(store=store)
    ask(console, b"csr board-a-0042")
    ask(console, b"put device-cert " + encode_b64(CERT).encode())
    assert error_code(ask(console, b"install")) == "incomplete"
    assert store.writes == 0 and read_installed(store) is None


def test_a_reboot_loses_the_session_but_not_what_was_installed():
    store = MemoryStore()
    console = new_console(store=store)
    ask(console, b"csr board-a-0042")
    console = None
    gc.collect()
    rebooted = new_console(store=store)
    assert error_code(ask(rebooted, b"put broker h 1")) == "no-session"
    assert error_code(ask(rebooted, b"install")) == "no-session"
    assert BANNER.startswith(b"sevenfold-console 1")


def test_tpm_commands_only_on_a_tpm():
    assert error_code(ask(new_console(), b"tpm-identity")) == "unsupported"
    tpm = new_console("tpm")
    words = ask(tpm, b"tpm-identity").split(" ")
    assert [decode_b64(w) for w in words[1:]] == [b"ek-cert", b"ek-pub", b"id-pub", b"quote-pub"]


def test_activate_answers_a_challenge_for_the_key_it_names():
    tpm = new_console("tpm")
    challenge = b"activate " + encode_b64(b"ab").encode() + b" " + encode_b64(b"cd").encode()
    assert decode_b64(ask(tpm, challenge).split(" ")[1]) == b"identity:abcd"
    assert decode_b64(ask(tpm, challenge + b" identity").split(" ")[1]) == b"identity:abcd"
    assert decode_b64(ask(tpm, challenge + b" quote").split(" ")[1]) == b"quote:abcd"
    assert error_code(ask(tpm, challenge + b" evidence")) == "root-of-trust"
