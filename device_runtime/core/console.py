"""The provisioning console: a line protocol a factory station speaks over a serial port.

One request per line (printable ASCII, at most ``MAX_REQUEST`` bytes before the
newline), one answer line per request: ``ok ...`` or ``err <code> <reason>``.
Binary values travel as base64 tokens. The device creates its DeviceID inside
its root of trust and only ever hands out public material: a CSR, and for a
TPM its endorsement certificate, public areas and a credential-activation
answer. What the station installs (certificates, CA, broker address) is kept
in RAM until ``install`` writes it with one atomic Store write, so a device is
provisioned completely or not at all. Whatever a line holds, the console
answers it with a specific ``err`` and keeps serving. Runs unchanged under
MicroPython; the protocol is documented in docs/console.md.
"""

import binascii
import gc
import sys

from device_runtime.core import cbor
from device_runtime.core.decimal_digits import is_digits
from device_runtime.core.errors import SevenfoldError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import RootOfTrust, Store

_SMALL_HEAP = sys.implementation.name == "micropython"
VERSION = 1
MAX_REQUEST = 1280
"""Bytes of one request line, newline excluded: the longest is ``put`` of a DICE DeviceID
certificate (under 700 bytes of DER with a 63-character device id, 924 in base64). The
buffer is one contiguous allocation, which a fragmented 64 KiB heap must still find."""
MAX_TOKENS = 5
BANNER = b"sevenfold-console " + str(VERSION).encode() + b" ready\n"
"""Written when the console starts: a station that reads it mid-flow knows the device rebooted."""
INSTALLED_KEY = "provisioning"
"""The Store key of the one record ``install`` writes."""
ITEMS = ("device-cert", "fleet-cert", "fleet-ca", "maker-ca")
"""Certificates ``put`` stages: the DeviceID's (from the manufacturer CA), the fleet's for the
same key, the broker's CA, and the manufacturer CA itself, whose key alone may unlock the
console again (``authorize``)."""
OWN_CERTIFICATES = ("device-cert", "fleet-cert")
MAX_HOST = 253
REPROVISION = b"sevenfold-console reprovision "
"""Prefix of what a manufacturer CA signs to let a provisioned device be provisioned again.

No DER structure starts with these bytes, so the signature can never pass for one on a
certificate."""


def reprovision_message(device_id: str, boot: str) -> bytes:
    """What the manufacturer CA signs to unlock a provisioned device, for this boot only."""
    return REPROVISION + device_id.encode() + b" " + boot.encode()


class ConsoleError(SevenfoldError):
    """A request the console refuses; ``code`` is the first word after ``err``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _printable(line: "bytes | bytearray") -> bool:
    for byte in line:
        if byte < 0x20 or byte > 0x7E:
            return False
    return True


def parse_request(line: "bytes | bytearray") -> "list[str]":
    """The words of one request line (without its newline); ConsoleError if malformed."""
    if len(line) > MAX_REQUEST:
        raise ConsoleError("too-long", "request over " + str(MAX_REQUEST) + " bytes")
    if not _printable(line):
        raise ConsoleError("bad-request", "a request is printable ASCII only")
    words = bytes(line).decode().split(" ")
    if len(words) > MAX_TOKENS:
        raise ConsoleError("bad-request", "more than " + str(MAX_TOKENS) + " words")
    for word in words:
        if not word:
            raise ConsoleError("bad-request", "empty word (words are separated by one space)")
    return words


def decode_b64(word: str) -> bytes:
    """Canonical base64 only (what ``encode_b64`` writes), so one value has one spelling."""
    for ch in word:
        if not ("A" <= ch <= "Z" or "a" <= ch <= "z" or "0" <= ch <= "9" or ch in "+/="):
            raise ConsoleError("bad-args", "not base64")
    try:
        value = binascii.a2b_base64(word)
    except ValueError:
        raise ConsoleError("bad-args", "not base64") from None
    # Canonical: unpadded length a multiple of four and no stray bits in the last quantum,
    # which only the last one to three bytes decide (so a small heap need not re-encode it all).
    tail = len(value) % 3 or 3
    if len(word) % 4 or (value and encode_b64(value[-tail:]) != word[-4:]) or (not value and word):
        raise ConsoleError("bad-args", "not canonical base64")
    return value


def encode_b64(data: bytes) -> str:
    return binascii.b2a_base64(data).decode().strip()


class LineBuffer:
    """Splits a byte stream into lines of at most *limit* bytes.

    The buffer is allocated once, so a long line does not fragment a small
    heap; an over-long line is dropped up to its newline and reported once as
    ``None``, so a flood costs the device nothing more.
    """

    def __init__(self, limit: int = MAX_REQUEST) -> None:
        self.limit = limit
        self._buffer = bytearray(limit)
        self._fill = 0
        self._dropping = False

    def feed(self, data: bytes) -> "list[bytes | None]":
        lines: "list[bytes | None]" = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            stop = len(data) if end < 0 else end
            if not self._dropping:
                if stop - start > self.limit - self._fill:
                    self._dropping = True
                    lines.append(None)
                else:
                    self._buffer[self._fill : self._fill + stop - start] = data[start:stop]
                    self._fill += stop - start
            if end < 0:
                return lines
            if self._dropping:
                self._dropping = False
            else:
                n = (
                    self._fill - 1
                    if self._fill and self._buffer[self._fill - 1] == 0x0D
                    else self._fill
                )
                lines.append(bytes(self._buffer[:n]))
            self._fill = 0
            start = end + 1


def _token(value: str, what: str) -> str:
    """A configured value that fits in one word of an answer."""
    if not value or len(value) > 64 or not _printable(value.encode()) or " " in value:
        raise ConsoleError("config", what + " must be 1-64 printable characters without spaces")
    return value


def read_installed(store: "Store") -> "dict[str, object] | None":
    """What ``install`` stored (device id, certificates, CA, broker), or None if not provisioned."""
    raw = store.read(INSTALLED_KEY)
    if raw is None:
        return None
    record = cbor.loads(raw)
    if not isinstance(record, dict) or not isinstance(record.get("device_id"), str):
        raise ConsoleError("storage", "the provisioning record is damaged")
    return record


class Console:
    """Answers the station's requests for one device; one instance per boot."""

    def __init__(
        self,
        *,
        rot: "RootOfTrust",
        store: "Store",
        hwmodel: str,
        serial: str,
        verify_es256: "object | None" = None,
    ) -> None:
        self.rot = rot
        self.store = store
        self.verify_es256 = verify_es256
        """The crypto port's verifier, for ``authorize``; None: a provisioned device stays so."""
        self._authorized = False
        self.hwmodel = _token(hwmodel, "hwmodel")
        self.serial = _token(serial, "serial")
        self.boot = encode_b64(rot.random_bytes(6))
        self._session: "str | None" = None
        self._staged: "dict[str, object]" = {}
        self._buffer = LineBuffer()

    def feed(self, data: bytes) -> bytes:
        """The answers (each ending in a newline) to the complete lines in *data*."""
        out = b""
        for line in self._buffer.feed(data):
            out += self.answer(line) + b"\n"
        return out

    def answer(self, line: "bytes | None") -> bytes:
        if _SMALL_HEAP:
            # A line's words and decoded values are a few hundred bytes each; on a
            # small heap they must find room among what the last request left.
            gc.collect()
        try:
            if line is None:
                raise ConsoleError("too-long", "request over " + str(MAX_REQUEST) + " bytes")
            words = parse_request(line)
            return b" ".join([b"ok"] + [word.encode() for word in self._run(words)])
        except ConsoleError as exc:
            return b"err " + exc.code.encode() + b" " + _reason(exc.reason)
        except SevenfoldError as exc:
            return b"err " + exc.code.encode() + b" " + _reason(exc.reason)
        except Exception as exc:  # a failing port must not end the console
            return b"err internal " + _reason(type(exc).__name__ + ": " + str(exc))

    def _run(self, words: "list[str]") -> "list[str]":
        command, args = words[0], words[1:]
        if command == "hello":
            return self._hello(args)
        if command == "csr":
            return self._csr(args)
        if command == "tpm-identity":
            _arity(args, 0, 0)
            rot = self._tpm()
            parts = [
                rot.endorsement_certificate(),  # type: ignore[attr-defined]
                rot.endorsement_public(),  # type: ignore[attr-defined]
                rot.identity_public(),  # type: ignore[attr-defined]
                rot.quote_public(),  # type: ignore[attr-defined]
            ]
            return [encode_b64(part) for part in parts]
        if command == "activate":
            _arity(args, 2, 3)  # the third word names the key: identity (the default) or quote
            rot = self._tpm()
            blob, secret = decode_b64(args[0]), decode_b64(args[1])
            answer = rot.activate_credential(blob, secret, *args[2:])  # type: ignore[attr-defined]
            return [encode_b64(answer)]
        if command == "put":
            return self._put(args)
        if command == "install":
            return self._install(args)
        if command == "authorize":
            return self._authorize(args)
        raise ConsoleError("unknown-command", "no command " + repr(command[:32]))

    def _hello(self, args: "list[str]") -> "list[str]":
        _arity(args, 0, 0)
        installed = read_installed(self.store)
        words = ["sevenfold-console", str(VERSION), "kind=" + self.rot.kind]
        words = words + ["hwmodel=" + self.hwmodel, "serial=" + self.serial, "boot=" + self.boot]
        if installed is None:
            return words + ["state=new"]
        return words + ["state=provisioned", "id=" + str(installed["device_id"])]

    def _csr(self, args: "list[str]") -> "list[str]":
        _arity(args, 1, 2)
        if len(args) == 2 and args[1] != "reprovision":
            raise ConsoleError("bad-args", "the second word of csr can only be reprovision")
        device_id = args[0]
        _check_device_id(device_id)
        installed = read_installed(self.store)
        if installed is not None and len(args) == 1:
            raise ConsoleError(
                "already-provisioned", "provisioned as " + str(installed["device_id"])
            )
        if installed is not None and not self._authorized:
            raise ConsoleError(
                "locked", "a provisioned device is provisioned again only after authorize"
            )
        der = self.rot.csr(device_id)
        self._session = device_id
        self._staged = {}
        return [encode_b64(der)]

    def _put(self, args: "list[str]") -> "list[str]":
        _arity(args, 2, 4)
        if self._session is None:
            raise ConsoleError("no-session", "put needs a csr first in this boot")
        item = args[0]
        if item == "broker":
            _arity(args, 3, 4)
            for port in args[2:]:
                if not is_digits(port) or len(port) > 5 or not 0 < int(port) < 65536:
                    raise ConsoleError("bad-args", "broker ports must be 1-65535")
            if len(args[1]) > MAX_HOST:
                raise ConsoleError("bad-args", "broker host too long")
            self._staged["broker_host"] = args[1]
            self._staged["broker_port"] = int(args[2])
            if len(args) == 4:
                self._staged["recovery_port"] = int(args[3])
            return [item]
        _arity(args, 2, 2)
        if item not in ITEMS:
            raise ConsoleError("bad-args", "no item " + repr(item[:32]))
        value = decode_b64(args[1])
        if not value.startswith(b"\x30\x82") or len(value) != 4 + int.from_bytes(value[2:4], "big"):
            raise ConsoleError("bad-certificate", item + " is not one DER certificate")
        if item in OWN_CERTIFICATES:
            if _spki(self.rot.identity_key().public_key()) not in value:
                raise ConsoleError("wrong-key", item + " is not for this device's DeviceID key")
            if (
                _subject(str(self._session)) + _spki(self.rot.identity_key().public_key())
                not in value
            ):
                raise ConsoleError("wrong-name", item + " does not name CN=" + str(self._session))
        self._staged[item] = _certified_key(value) if item == "maker-ca" else value
        return [item]

    def _authorize(self, args: "list[str]") -> "list[str]":
        """Unlock a provisioned device for this boot: the manufacturer CA signed the request."""
        _arity(args, 1, 1)
        installed = read_installed(self.store)
        if installed is None:
            raise ConsoleError("bad-request", "the device is not provisioned: nothing to unlock")
        key = installed.get("maker-ca")
        if self.verify_es256 is None or not isinstance(key, bytes):
            raise ConsoleError("unsupported", "this device cannot be unlocked from its console")
        signature = decode_b64(args[0])
        message = reprovision_message(str(installed["device_id"]), self.boot)
        try:
            self.verify_es256(key, message, signature)  # type: ignore[operator]
        except SevenfoldError:
            raise ConsoleError(
                "unauthorized", "not signed by this device's manufacturer CA"
            ) from None
        self._authorized = True
        return ["authorized"]

    def _install(self, args: "list[str]") -> "list[str]":
        _arity(args, 0, 0)
        if self._session is None:
            raise ConsoleError("no-session", "install needs a csr first in this boot")
        for item in ITEMS + ("broker_host",):
            if item not in self._staged:
                raise ConsoleError("incomplete", item + " was not put")
        record = dict(self._staged)
        record["device_id"] = self._session
        self.store.write(INSTALLED_KEY, cbor.dumps(record))
        self._session = None
        self._staged = {}
        return [str(record["device_id"])]

    def _tpm(self) -> "RootOfTrust":
        if self.rot.kind != "tpm":
            raise ConsoleError("unsupported", "this device's root of trust is " + self.rot.kind)
        return self.rot


def _check_device_id(device_id: str) -> None:
    """``protocol.check_device_id``'s rule, restated so the console need not load the protocol
    (its schemas cost a 64 KiB heap more than the console has to spare);
    ``tests/device_runtime/core/test_console_encoding.py`` holds the two to the same answers."""
    ok = 0 < len(device_id) <= 63 and device_id != "sevenfold-server" and device_id[0] != "-"
    for ch in device_id:
        ok = ok and ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-")
    if not ok:
        raise ConsoleError("bad-args", "device id " + repr(device_id[:64]) + " is not allowed")


P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
"""SubjectPublicKeyInfo up to the point, for an uncompressed P-256 key (91 bytes in all)."""


def _spki(point: bytes) -> bytes:
    return P256_SPKI_PREFIX + point


def _subject(common_name: str) -> bytes:
    """``Name ::= CN=<common_name>`` in DER, as the factory's CAs write device subjects."""
    cn = common_name.encode()
    attribute = b"\x06\x03\x55\x04\x03\x0c" + bytes((len(cn),)) + cn
    rdn = b"\x30" + bytes((len(attribute),)) + attribute
    return b"\x30" + bytes((len(rdn) + 2,)) + b"\x31" + bytes((len(rdn),)) + rdn


def _certified_key(certificate: bytes) -> bytes:
    """The P-256 point of a certificate's SubjectPublicKeyInfo (the first one it holds)."""
    at = certificate.find(P256_SPKI_PREFIX)
    if at < 0 or len(certificate) < at + len(P256_SPKI_PREFIX) + 65:
        raise ConsoleError("bad-certificate", "the certificate holds no P-256 key")
    start = at + len(P256_SPKI_PREFIX)
    return bytes(certificate[start : start + 65])


def _arity(args: "list[str]", low: int, high: int) -> None:
    if not low <= len(args) <= high:
        raise ConsoleError("bad-args", "expected " + str(low) + "-" + str(high) + " arguments")


def _reason(reason: str) -> bytes:
    """A reason fit for one answer line: printable ASCII, bounded."""
    return bytes(byte if 0x20 <= byte <= 0x7E else 0x3F for byte in reason.encode()[:200])
