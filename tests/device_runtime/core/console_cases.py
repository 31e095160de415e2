"""A stand-in root of trust and store for the console's portable tests."""

from device_runtime.core.console import Console, encode_b64
from device_runtime.core.errors import RootOfTrustError

PORTABLE_HELPER = True

POINT = b"\x04" + bytes(range(1, 65))
CERT = b"0\x82cert" + POINT + b"tail"


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

    def activate_credential(self, blob, secret):
        return blob + secret


class MemoryStore:
    def __init__(self):
        self.values = {}
        self.writes = 0

    def read(self, key):
        return self.values.get(key)

    def write(self, key, value):
        self.writes += 1
        self.values[key] = value


def new_console(kind="software", store=None):
    return Console(
        rot=StandInRoot(kind), store=store or MemoryStore(), hwmodel="board-a", serial="0042"
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
    assert ask(console, b"put device-cert " + cert) == "ok device-cert"
    assert ask(console, b"put fleet-cert " + cert) == "ok fleet-cert"
    assert ask(console, b"put fleet-ca " + encode_b64(b"ca").encode()) == "ok fleet-ca"
    assert ask(console, b"put broker broker.example 8883") == "ok broker"
    return ask(console, b"install")
