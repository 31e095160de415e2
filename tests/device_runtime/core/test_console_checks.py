"""What the console checks before it installs anything: certificates, device ids, the lock.

On CPython. The console code they exercise is the portable one (its line
protocol runs under MicroPython at 64 KiB in ``test_console``); these checks hold
several certificates and their base64 at once, which together with the test
harness leave a 64 KiB unix-port heap (which also holds all imported bytecode)
short by a few hundred bytes.
"""

import gc

from device_runtime.core.console import encode_b64, read_installed
from tests.device_runtime.core import console_cases
from tests.device_runtime.core.console_cases import (
    CERT,
    POINT,
    MemoryStore,
    ask,
    error_code,
    provision,
)

GOOD_SIGNATURE = b"\x01" * 64


def stand_in_verify(public_key, message, signature):
    """A verifier that accepts GOOD_SIGNATURE by the key in CERT over the reprovision request."""
    from device_runtime.core.errors import CryptoError

    if public_key != POINT or signature != GOOD_SIGNATURE:
        raise CryptoError("signature does not match")
    if not message.startswith(b"sevenfold-console reprovision board-a-0042 "):
        raise CryptoError("not the expected message")


def new_console(kind="software", store=None, verify=stand_in_verify):
    return console_cases.new_console(kind, store, verify)


def test_a_certificate_for_another_key_or_name_or_no_certificate_is_refused():
    console = new_console()
    ask(console, b"csr board-a-0042")
    variants = (
        (CERT.replace(POINT, b"\x04" + bytes(range(65, 129))), "wrong-key"),
        (CERT.replace(b"board-a-0042", b"board-a-0043"), "wrong-name"),
    )
    for other, code in variants:
        line = b"put fleet-cert " + encode_b64(other).encode()
        gc.collect()
        answer = ask(console, line)
        assert error_code(answer) == code, answer
        line = answer = None
    hidden = encode_b64(b"junk" + POINT + b"junk").encode()
    for item in (b"device-cert", b"fleet-ca", b"maker-ca"):
        answer = ask(console, b"put " + item + b" " + hidden)
        assert error_code(answer) == "bad-certificate", answer


def test_a_device_id_the_protocol_refuses_is_refused():
    for bad in (b"Board-A", b"-board", b"sevenfold-server", b"board_a", b"x" * 64):
        assert error_code(ask(new_console(), b"csr " + bad)) == "bad-args", bad


def test_a_provisioned_device_is_locked_until_its_manufacturer_authorizes():
    console = new_console()
    provision(console)
    assert error_code(ask(console, b"csr board-a-0042")) == "already-provisioned"
    assert error_code(ask(console, b"csr board-a-0042 reprovision")) == "locked"
    forged = encode_b64(bytes(64)).encode()
    assert error_code(ask(console, b"authorize " + forged)) == "unauthorized"
    assert error_code(ask(console, b"csr board-a-0042 reprovision")) == "locked"
    good = encode_b64(GOOD_SIGNATURE).encode()
    assert ask(console, b"authorize " + good) == "ok authorized"
    assert ask(console, b"csr board-a-0042 reprovision").startswith("ok ")
    assert error_code(ask(console, b"csr board-a-0042 again")) == "bad-args"


def test_authorization_holds_for_one_boot_and_needs_a_verifier():
    store = MemoryStore()
    console = new_console(store=store)
    provision(console)
    assert ask(console, b"authorize " + encode_b64(GOOD_SIGNATURE).encode()) == "ok authorized"
    rebooted = new_console(store=store)
    assert error_code(ask(rebooted, b"csr board-a-0042 reprovision")) == "locked"
    blind = new_console(store=store, verify=None)
    answer = ask(blind, b"authorize " + encode_b64(GOOD_SIGNATURE).encode())
    assert error_code(answer) == "unsupported"
    assert error_code(ask(new_console(), b"authorize " + encode_b64(GOOD_SIGNATURE).encode())) == (
        "bad-request"
    )


def test_install_stores_everything_in_one_write_and_hello_says_provisioned():
    store = MemoryStore()
    console = new_console(store=store)
    assert provision(console) == "ok board-a-0042"
    assert store.writes == 1
    record = read_installed(store)
    assert record["device_id"] == "board-a-0042" and record["fleet-ca"] == CERT
    assert (record["broker_host"], record["broker_port"]) == ("broker.example", 8883)
    assert ask(console, b"hello").endswith("state=provisioned id=board-a-0042")
