"""A stand-in root of trust and store for the console's portable tests."""

import gc

from device_runtime.core.console import Console, encode_b64
from device_runtime.core.errors import RootOfTrustError

PORTABLE_HELPER = True

POINT = b"\x04" + bytes(range(1, 65))
CERT = bytes.fromhex(
    "308201183081c0a003020102020101300a06082a8648ce3d04030230123110300e06035504030c0774657374"
    "2063613022180f32303236303130313030303030305a180f39393939313233313233353935395a3017311530"
    "1306035504030c0c626f6172642d612d303034323059301306072a8648ce3d020106082a8648ce3d03010703"
    "4200040102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526272829"
    "2a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40300a06082a8648ce3d040302034700304402200102"
    "030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2002202122232425262728292a2b2c"
    "2d2e2f303132333435363738393a3b3c3d3e3f40"
)
"""A DER certificate (signature not checked by the console) naming CN=board-a-0042 for POINT,
written as bytes so the tests need not load the DER encoder beside the console."""


class StandInKey:
    def public_key(self):
        return POINT

    def sign(self, message):
        return bytes(64)


class StandInRoot:
    def __init__(self, kind="software"):
        self.kind = kind
        self.fail = False

    def identity_key(self):
        return StandInKey()

    def csr(self, common_name):
        if self.fail:
            raise RootOfTrustError("locked out")
        return b"csr:" + common_name.encode() + POINT

    def random_bytes(self, n):
        return bytes(n)

    def endorsement_certificate(self):
        return b"ek-cert"

    def endorsement_public(self):
        return b"ek-pub"

    def identity_public(self):
        return b"id-pub"

    def quote_public(self):
        return b"quote-pub"

    def activate_credential(self, blob, secret, key="identity"):
        if key not in ("identity", "quote"):
            raise RootOfTrustError("no key " + repr(key))
        return key.encode() + b":" + blob + secret


class MemoryStore:
    def __init__(self):
        self.values = {}
        self.writes = 0

    def read(self, key):
        return self.values.get(key)

    def write(self, key, value):
        self.writes += 1
        self.values[key] = value


def new_console(kind="software", store=None, verify=None):
    gc.collect()  # the consoles of earlier checks are garbage; a board has one
    return Console(
        rot=StandInRoot(kind),
        store=store or MemoryStore(),
        hwmodel="board-a",
        serial="0042",
        verify_es256=verify,
    )


def ask(console, line):
    out = console.feed(line + b"\n")
    assert out.endswith(b"\n") and out.count(b"\n") == 1, out
    return out[:-1].decode()


def error_code(answer):
    assert answer.startswith("err "), answer
    return answer.split(" ")[1]


def provision(console, device_id=b"board-a-0042"):
    assert ask(console, b"csr " + device_id).startswith("ok ")
    cert = encode_b64(CERT).encode()
    for item in (b"device-cert", b"fleet-cert", b"fleet-ca", b"maker-ca"):
        answer = ask(console, b"put " + item + b" " + cert)
        assert answer == "ok " + item.decode(), answer
    assert ask(console, b"put broker broker.example 8883") == "ok broker"
    return ask(console, b"install")
