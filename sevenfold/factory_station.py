"""The factory station: provision boards over their consoles and register them with the fleet.

For each board on a serial port (any pyserial URL): ``hello``, choose the
device id from its hardware model and serial number, ``csr`` (the board makes
its DeviceID inside its root of trust), for a TPM check its endorsement and
that its DeviceID and quote keys are TPM-resident with a credential challenge
each, check the CSR (proof of possession, CN, P-256), sign the DeviceID
certificate with the manufacturer CA, register with the fleet server (which
signs the fleet certificate and records the quote key), check its answer (the
fleet certificate is for this key and name and verifies under the broker CA it
sent), then ``put`` everything on the board and ``install`` it in one atomic
write. A board whose root of trust is ``software`` is refused unless the line
allows it (development lines, the demo).

Registration comes before install and is idempotent, so a station that dies
anywhere leaves either nothing, or a registration the next run completes
(same id, same key); a board that reboots mid-flow is noticed (its banner, or
a session it no longer has) and reported, never half-installed.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from attestation_server import tpm_identity
from attestation_server.provisioning import (
    ProvisioningRefused,
    check_device_id,
    public_point,
    read_csr,
)
from device_runtime.core import console, protocol
from device_runtime.core.errors import SevenfoldError, TransportError
from fleet_platform.manufacturer_cas import is_ca_certificate
from fleet_platform.pki import CertificateAuthority

DEFAULT_TIMEOUT_S = 10.0
MAX_ANSWER = 16384
"""Bytes of one answer line the station reads (a TPM's EK certificate is the longest)."""
MANUFACTURER_CA_NAME = "Sevenfold Manufacturer CA"
REGISTER_ATTEMPTS = 5
"""Tries of a registration the server answered 503 (storage busy) or never answered:
registering is idempotent, so repeating it is safe."""
REGISTER_BACKOFF_S = 0.25
"""The first wait between tries; each wait doubles it, with jitter, up to REGISTER_MAX_WAIT_S."""
REGISTER_MAX_WAIT_S = 2.0
_JITTER = secrets.SystemRandom()


class StationError(SevenfoldError):
    """A board could not be provisioned; ``code`` says why, in the same words as the docs."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def device_id_for(hwmodel: str, serial: str) -> str:
    """``<hwmodel>-<serial>``, lower-cased: unique as long as serials are unique per model."""
    candidate = f"{hwmodel}-{serial}".lower()
    try:
        return check_device_id(candidate)
    except ProvisioningRefused as exc:
        raise StationError(
            "bad-device-id", f"{candidate[:80]!r} cannot be a device id: {exc.reason}"
        ) from None


class ConsoleLink:
    """One board's console on a pyserial URL: a request, then its answer line, or an error."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        import serial

        try:
            self._port = serial.serial_for_url(url, baudrate=115200, timeout=0.05)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise StationError("port", f"cannot open {url}: {exc}") from None
        self.url = url
        self.timeout = timeout
        self._lines = console.LineBuffer(limit=MAX_ANSWER)
        self._pending: list[bytes | None] = []
        self._drain()

    def close(self) -> None:
        self._port.close()

    def _drain(self) -> None:
        """Forget what the board printed before we spoke (its boot banner, old answers)."""
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            self._lines.feed(self._port.read(4096))
        self._lines = console.LineBuffer(limit=MAX_ANSWER)

    def ask(self, *words: str) -> list[str]:
        """The words after ``ok``; StationError for an ``err``, silence, a reboot or garbage."""
        request = " ".join(words).encode()
        if len(request) > console.MAX_REQUEST:
            raise StationError("too-long", f"{words[0]} would be over the console's line limit")
        try:
            self._port.write(request + b"\n")
        except Exception as exc:
            raise StationError("port", f"writing to {self.url} failed: {exc}") from None
        deadline = time.monotonic() + self.timeout
        while True:
            while self._pending:
                line = self._pending.pop(0)
                return self._answer(words[0], line)
            if time.monotonic() > deadline:
                raise StationError(
                    "stalled", f"the board did not answer {words[0]} within {self.timeout:g} s"
                )
            try:
                data = self._port.read(4096)
            except Exception as exc:
                raise StationError("port", f"reading from {self.url} failed: {exc}") from None
            self._pending.extend(self._lines.feed(data))

    def _answer(self, command: str, line: bytes | None) -> list[str]:
        if line is None:
            raise StationError("garbled", f"the answer to {command} is over {MAX_ANSWER} bytes")
        if line + b"\n" == console.BANNER:
            raise StationError("rebooted", f"the board rebooted while answering {command}")
        text = line.decode("ascii", "replace")
        if text == "ok" or text.startswith("ok "):
            return text.split(" ")[1:]
        if text.startswith("err "):
            _, code, *reason = text.split(" ", 2)
            if code == "no-session":
                raise StationError("rebooted", f"the board forgot the session ({command})")
            raise StationError(code, f"the board refused {command}: {' '.join(reason)[:200]}")
        raise StationError("garbled", f"the answer to {command} is not ok/err: {text[:64]!r}")


@dataclass(frozen=True, slots=True)
class Hello:
    kind: str
    hwmodel: str
    serial: str
    boot: str
    provisioned_as: str | None


def parse_hello(words: list[str]) -> Hello:
    if words[:2] != ["sevenfold-console", str(console.VERSION)]:
        raise StationError("bad-console", f"not a version {console.VERSION} provisioning console")
    fields = dict(word.partition("=")[::2] for word in words[2:])
    kind = fields.get("kind", "")
    if kind not in protocol.ROOTS_OF_TRUST:
        raise StationError("bad-rot-kind", f"unknown root-of-trust kind {kind[:32]!r}")
    return Hello(
        kind=kind,
        hwmodel=fields.get("hwmodel", ""),
        serial=fields.get("serial", ""),
        boot=fields.get("boot", ""),
        provisioned_as=fields.get("id") if fields.get("state") == "provisioned" else None,
    )


@dataclass(slots=True)
class Station:
    """What every board of one run shares: the CA, the server, the policy."""

    authority: CertificateAuthority
    server: str
    token: str
    name: str
    hwmodels: Sequence[str] = ()
    """Hardware models this line builds; empty accepts any."""
    tpm_cas: Sequence[x509.Certificate] = ()
    reprovision: bool = False
    allow_software: bool = False
    """Accept boards whose root of trust is ``software`` (development lines, the demo)."""
    timeout: float = DEFAULT_TIMEOUT_S
    _claimed: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, device_id: str, port: str) -> None:
        """Two boards of one batch never get the same device id."""
        with self._lock:
            other = self._claimed.setdefault(device_id, port)
        if other != port:
            raise StationError(
                "duplicate-device-id", f"{device_id} is also the board on {other} in this batch"
            )


@dataclass(slots=True)
class BoardResult:
    port: str
    device_id: str | None = None
    kind: str | None = None
    hwmodel: str | None = None
    step: str = "open"
    registered: bool | None = None
    """True when this run created the registration, False when it repeated one."""
    error: str | None = None
    code: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "device_id": self.device_id,
            "kind": self.kind,
            "hwmodel": self.hwmodel,
            "ok": self.error is None,
            "step": self.step,
            "new_registration": self.registered,
            "code": self.code,
            "error": self.error,
        }


Progress = Callable[[BoardResult], None]


def provision(station: Station, port: str, progress: Progress | None = None) -> BoardResult:
    """Provision the board on *port*; the result says how far it got and why it stopped."""
    result = BoardResult(port=port)

    def step(name: str) -> None:
        result.step = name
        if progress is not None:
            progress(result)

    link: ConsoleLink | None = None
    try:
        step("open")
        link = ConsoleLink(port, timeout=station.timeout)
        _provision(station, link, result, step)
        step("done")
    except StationError as exc:
        result.code, result.error = exc.code, exc.reason
    except SevenfoldError as exc:
        result.code, result.error = exc.code, exc.reason
    finally:
        if link is not None:
            link.close()
    if progress is not None:
        progress(result)
    return result


def _provision(
    station: Station, link: ConsoleLink, result: BoardResult, step: Callable[[str], None]
) -> None:
    step("hello")
    hello = parse_hello(link.ask("hello"))
    result.kind, result.hwmodel = hello.kind, hello.hwmodel
    if station.hwmodels and hello.hwmodel not in station.hwmodels:
        raise StationError(
            "unknown-hwmodel",
            f"hardware model {hello.hwmodel[:64]!r} is not one this station provisions",
        )
    if hello.kind == "software" and not station.allow_software:
        raise StationError(
            "software-root-of-trust",
            "the board has only a software root of trust; --allow-software accepts it"
            " (development lines only)",
        )
    device_id = device_id_for(hello.hwmodel, hello.serial)
    result.device_id = device_id
    if hello.provisioned_as is not None and not station.reprovision:
        raise StationError(
            "already-provisioned",
            f"the board is provisioned as {hello.provisioned_as}; --reprovision replaces it",
        )
    station.claim(device_id, link.url)
    if hello.provisioned_as is not None:  # --reprovision: the manufacturer CA unlocks it
        message = console.reprovision_message(hello.provisioned_as, hello.boot)
        signature = station.authority.sign_console_authorization(message)
        link.ask("authorize", console.encode_b64(signature))
    step("csr")
    words = link.ask("csr", device_id, *(["reprovision"] if station.reprovision else []))
    csr_der = _b64(words, 0)
    try:
        csr = read_csr(csr_der, device_id)
    except ProvisioningRefused as exc:
        raise StationError(exc.code, exc.reason) from None
    quote_key = None
    if hello.kind == "tpm":
        step("tpm")
        point = public_point(csr.public_key())  # type: ignore[arg-type]
        quote_key = _check_tpm(station, link, point)
    step("sign")
    csr_pem = csr.public_bytes(serialization.Encoding.PEM)
    if hello.kind == "dice":  # its DeviceID key certifies its Alias key
        device_cert = station.authority.sign_dice_device_id_csr(
            csr_pem, required_common_name=device_id
        )
    else:
        device_cert = station.authority.sign_csr(csr_pem, required_common_name=device_id)
    step("register")
    registration = _register(station, device_id, hello, csr_der, device_cert, quote_key)
    answer = check_answer(registration, csr, device_id)
    result.registered = answer.created
    step("install")
    current = parse_hello(link.ask("hello"))
    if current.boot != hello.boot:
        raise StationError("rebooted", "the board rebooted during provisioning")
    link.ask("put", "device-cert", _der_b64(device_cert))
    link.ask("put", "fleet-cert", _der(answer.fleet_certificate))
    link.ask("put", "fleet-ca", _der(answer.broker_ca))
    link.ask("put", "maker-ca", _der_b64(station.authority.cert_path.read_bytes()))
    ports = [str(answer.broker_port)]
    if answer.recovery_port is not None:
        ports.append(str(answer.recovery_port))
    link.ask("put", "broker", answer.broker_host, *ports)
    installed = link.ask("install")
    if installed != [device_id]:
        raise StationError("garbled", f"the board installed {installed[:1]!r}, not {device_id}")


@dataclass(frozen=True, slots=True)
class Answer:
    """The server's answer to a registration, checked."""

    fleet_certificate: x509.Certificate
    broker_ca: x509.Certificate
    broker_host: str
    broker_port: int
    created: bool
    recovery_port: int | None = None
    """The broker's recovery listener, where the board attests with its DeviceID certificate."""


def check_answer(
    answer: dict[str, Any], csr: x509.CertificateSigningRequest, device_id: str
) -> Answer:
    """The registration's answer, if its fleet certificate is for the CSR's key and exactly
    *device_id* and verifies under the broker CA it came with; else ``bad-answer``."""
    try:
        fleet = x509.load_pem_x509_certificate(str(answer["fleet_certificate"]).encode())
        broker_ca = x509.load_pem_x509_certificate(str(answer["broker_ca"]).encode())
        host, port, created = answer["broker_host"], answer["broker_port"], answer["created"]
        recovery = answer.get("broker_recovery_port")
        fleet_key = fleet.public_key()
    except (KeyError, TypeError, ValueError, UnsupportedAlgorithm) as exc:
        raise StationError("bad-answer", f"the fleet server's answer is malformed: {exc}") from None
    csr_key = csr.public_key()
    if not isinstance(fleet_key, type(csr_key)) or fleet_key != csr_key:
        raise StationError("bad-answer", "the fleet certificate is not for the board's key")
    names = fleet.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != device_id:
        raise StationError("bad-answer", f"the fleet certificate does not name {device_id}")
    if not is_ca_certificate(broker_ca):
        raise StationError("bad-answer", "the broker CA the fleet server sent is not a CA")
    try:
        fleet.verify_directly_issued_by(broker_ca)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise StationError(
            "bad-answer", "the fleet certificate does not verify under the broker CA"
        ) from None
    if (
        not isinstance(host, str)
        or not host
        or isinstance(port, bool)
        or not isinstance(port, int)
        or not 0 < port < 65536
        or not isinstance(created, bool)
        or not (recovery is None or _is_port(recovery))
    ):
        raise StationError("bad-answer", "the fleet server's broker address is malformed")
    return Answer(
        fleet_certificate=fleet, broker_ca=broker_ca, broker_host=host, broker_port=port,
        created=created, recovery_port=recovery,
    )  # fmt: skip


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _check_tpm(station: Station, link: ConsoleLink, csr_point: bytes) -> bytes:
    """EK certificate chains to a trusted TPM CA, the DeviceID key is TPM-resident and is the
    CSR's, the quote key is a TPM-resident restricted key, and both live in that TPM (a
    credential challenge each). Returns the quote key's public area, for the server to record
    so that a verifier can later believe the board's quotes."""
    if not station.tpm_cas:
        raise StationError("tpm-ca-required", "a TPM board needs --tpm-ca to check its EK")
    words = link.ask("tpm-identity")
    ek_cert, ek_public = _b64(words, 0), _b64(words, 1)
    key_public, quote_public = _b64(words, 2), _b64(words, 3)
    try:
        tpm_identity.check_endorsement(ek_cert, ek_public, list(station.tpm_cas))
        resident = tpm_identity.resident_key_point(key_public)
        if not hmac.compare_digest(resident, csr_point):
            raise StationError("not-resident", "the CSR's key is not the TPM-resident DeviceID")
        tpm_identity.check_quote_key(quote_public)
        challenges = {
            "identity": tpm_identity.make_challenge(ek_public, key_public),
            "quote": tpm_identity.make_challenge(ek_public, quote_public),
        }
    except tpm_identity.TpmIdentityError as exc:
        raise StationError("tpm-identity", str(exc)) from None
    for key, challenge in challenges.items():
        try:
            answer = link.ask(
                "activate",
                console.encode_b64(challenge.credential_blob),
                console.encode_b64(challenge.encrypted_secret),
                key,
            )
        except StationError as exc:
            if exc.code != "root-of-trust":
                raise
            raise StationError(
                "tpm-challenge",
                f"the TPM refused the credential challenge for its {key} key: {exc.reason}",
            ) from None
        if not tpm_identity.answer_matches(challenge, _b64(answer, 0)):
            raise StationError(
                "tpm-challenge",
                f"the TPM did not answer the credential challenge for its {key} key",
            )
    return quote_public


def _register(
    station: Station,
    device_id: str,
    hello: Hello,
    csr_der: bytes,
    device_cert: bytes,
    quote_key: bytes | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "device_id": device_id,
        "hwmodel": hello.hwmodel,
        "rot_kind": hello.kind,
        "csr": base64.b64encode(csr_der).decode(),
        "manufacturer_certificate": device_cert.decode(),
        "station": station.name,
        "reprovision": station.reprovision,
    }
    if quote_key is not None:
        body["quote_key"] = base64.b64encode(quote_key).decode()
    url = f"{station.server.rstrip('/')}/api/v1/provisioned-devices"
    headers = {"Authorization": f"Bearer {station.token}"}
    for attempt in range(1, REGISTER_ATTEMPTS + 1):
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=30)
        except httpx.TransportError as exc:
            if attempt == REGISTER_ATTEMPTS:
                raise TransportError(
                    f"the fleet server at {station.server} did not answer"
                    f" ({REGISTER_ATTEMPTS} tries): {exc}"
                ) from None
        else:
            if response.status_code != 503:
                return _registration_answer(response, device_id)
            if attempt == REGISTER_ATTEMPTS:
                raise StationError(
                    "server-unavailable",
                    f"the fleet server answered 503 to {REGISTER_ATTEMPTS} tries:"
                    f" {_detail(response)}",
                )
        time.sleep(_backoff(attempt))
    raise AssertionError("unreachable")


def _backoff(attempt: int) -> float:
    """The wait after try *attempt*: doubling from REGISTER_BACKOFF_S, jittered by ±50 %."""
    wait = min(REGISTER_BACKOFF_S * 2.0 ** (attempt - 1), REGISTER_MAX_WAIT_S)
    return wait * (0.5 + _JITTER.random())


def _registration_answer(response: httpx.Response, device_id: str) -> dict[str, Any]:
    if response.status_code == 200:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise StationError("bad-answer", "the fleet server's answer is not a JSON object")
        return answer
    detail = _detail(response)
    code = {401: "unauthorized", 409: "conflict"}.get(response.status_code, "registration-refused")
    # The server's own code (downgrade, untrusted-manufacturer, ...) when it gave one.
    stated = detail.partition(": ")[0]
    if response.status_code in (409, 422) and re.fullmatch(r"[a-z][a-z-]{1,40}", stated):
        code = stated
    raise StationError(
        code, f"the fleet server refused {device_id} ({response.status_code}): {detail}"
    )


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))[:300]
    except (ValueError, AttributeError):
        return response.text[:200]


def _b64(words: list[str], index: int) -> bytes:
    if len(words) <= index:
        raise StationError("garbled", "the board's answer is missing a value")
    try:
        return console.decode_b64(words[index])
    except console.ConsoleError as exc:
        raise StationError("garbled", f"the board's answer is not base64: {exc.reason}") from None


def _der_b64(pem: bytes) -> str:
    return _der(x509.load_pem_x509_certificate(pem))


def _der(certificate: x509.Certificate) -> str:
    return console.encode_b64(certificate.public_bytes(serialization.Encoding.DER))


def init_ca(directory: Path, *, common_name: str = MANUFACTURER_CA_NAME) -> CertificateAuthority:
    """A new manufacturer CA in *directory* (0700; key and certificate 0600); never overwrites."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    return CertificateAuthority.create(
        common_name=common_name, directory=directory, issues_issuers=True
    )
