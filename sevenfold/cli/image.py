"""``sevenfold image``: sign, verify and inspect MCUboot-compatible firmware images.

The checks are the device's own (``device_runtime.core.signed_image``), so an
image this command passes is one a device accepts, and a refusal reads the
same here as in a device's log. Signing and verifying need ``cryptography``
(the device extra), imported when the command runs; inspecting needs no key
and nothing beyond the core.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer

from device_runtime.core import signed_image
from device_runtime.core.errors import ConfigError
from device_runtime.core.hmac_sha256 import digests_equal
from sevenfold.cli.extras import missing_extra
from sevenfold.cli.options import JsonOption
from sevenfold.cli.output import emit_json, literal_table, reported_errors, say, show

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

app = typer.Typer(help="MCUboot-compatible signed firmware images.", no_args_is_help=True)

CHUNK_SIZE = 1 << 20
"""Bytes read at a time: enough that hashing, not the calls, is what a verify costs (at 4 KiB,
the calls cost a fifth of it on CPython: bench/bench_image_verify.py)."""
TLV_NAMES = {
    signed_image.KEYHASH: "KEYHASH",
    signed_image.SHA256: "SHA256",
    signed_image.ECDSA_SIG: "ECDSA_SIG",
    signed_image.SEC_CNT: "SEC_CNT",
}
KeyOption = Annotated[Path, typer.Option("--key", help="PEM key file (P-256).")]
ImageArgument = Annotated[Path, typer.Argument(help="The signed image.")]


@app.command("sign")
def sign(
    source: Annotated[Path, typer.Argument(help="The firmware binary, without a header.")],
    target: Annotated[Path, typer.Argument(help="Where the signed image goes.")],
    key: KeyOption,
    version: Annotated[str, typer.Option("--version", help="MAJOR.MINOR.REVISION[+BUILD].")],
    security_counter: Annotated[
        int, typer.Option("--security-counter", min=0, max=0xFFFFFFFF, help="Anti-rollback.")
    ],
    header_size: Annotated[int, typer.Option("--header-size", min=32, max=0xFFFF)] = 0x200,
    as_json: JsonOption = False,
) -> None:
    """Sign a firmware binary, as `imgtool sign --pad-header` does (deterministic signature)."""
    with reported_errors():
        with _device_extra("image sign"):
            from device_runtime.image_signer import public_point, sign_image
            from device_runtime.ports.cpython.crypto import verify_ecdsa_der
        payload = _read(source)
        private_key = _private_key(key)
        image = sign_image(
            payload,
            key=private_key,
            version=version,
            security_counter=security_counter,
            header_size=header_size,
        )
        try:
            target.write_bytes(image)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
        with _opened(target) as stream:
            point = public_point(private_key.public_key())
            verified = signed_image.verify(
                stream.read, point, verify_ecdsa_der, chunk_size=CHUNK_SIZE
            )
    _report("signed " + str(target), verified, as_json)


@app.command("verify")
def verify(image: ImageArgument, key: KeyOption, as_json: JsonOption = False) -> None:
    """Check an image's hash and signature against a key (a public or a private PEM)."""
    with reported_errors():
        with _device_extra("image verify"):
            from device_runtime.image_signer import public_point
            from device_runtime.ports.cpython.crypto import verify_ecdsa_der
        point = public_point(_public_key(key))
        with _opened(image) as stream:
            verified = signed_image.verify(
                stream.read, point, verify_ecdsa_der, chunk_size=CHUNK_SIZE
            )
    _report("valid " + str(image), verified, as_json)


@app.command("inspect")
def inspect(image: ImageArgument, as_json: JsonOption = False) -> None:
    """Header fields and TLVs of an image, without a key: nothing shown here is verified."""
    with reported_errors(), _opened(image) as stream:
        parsed = signed_image.inspect(stream.read, chunk_size=CHUNK_SIZE)
    described = describe(parsed)
    if as_json:
        emit_json(described)
        return
    rows = [(name.replace("_", " "), value) for name, value in described.items() if name != "tlvs"]
    show(literal_table(headers=("field", "value"), title=str(image), rows=rows))
    tlv_rows = [(t["area"], t["name"], t["type"], t["offset"], t["length"], t["value"])
                for t in described["tlvs"]]  # fmt: skip
    show(
        literal_table(
            headers=("area", "TLV", "type", "offset", "length", "value"),
            title="TLVs",
            rows=tlv_rows,
        )
    )


def describe(image: signed_image.Image) -> dict[str, Any]:
    """What ``inspect --json`` prints: the header's fields, the TLVs, and whether the hash holds."""
    stated = image.tlvs.get(signed_image.SHA256)
    counter = image.tlvs.get(signed_image.SEC_CNT)
    key_hash = image.tlvs.get(signed_image.KEYHASH)
    return {
        "version": image.version,
        "security_counter": None if counter is None else image.security_counter,
        "load_address": f"0x{image.load_address:08x}",
        "header_size": image.header_size,
        "payload_size": image.payload_size,
        "protected_tlv_size": image.protected_size,
        "flags": f"0x{image.flags:08x}",
        "image_size": image.size,
        "image_hash": image.digest.hex(),
        "hash_matches": stated is not None and digests_equal(stated[1], image.digest),
        "key_hash": None if key_hash is None else key_hash[1].hex(),
        "tlvs": [
            {
                "area": "protected" if kind in signed_image.PROTECTED else "unprotected",
                "name": TLV_NAMES[kind],
                "type": f"0x{kind:02x}",
                "offset": offset,
                "length": len(value),
                "value": value.hex(),
            }
            for kind, (offset, value) in sorted(image.tlvs.items(), key=lambda item: item[1][0])
        ],
    }


def _report(what: str, verified: signed_image.VerifiedImage, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "version": verified.version,
                "security_counter": verified.security_counter,
                "image_hash": verified.image_hash.hex(),
                "key_hash": verified.key_hash.hex(),
                "header_size": verified.header_size,
                "payload_size": verified.payload_size,
                "image_size": verified.size,
            }
        )
        return
    say((what, "green"), ": version ", (verified.version, "bold"), ", security counter ",
        verified.security_counter, ", hash ", verified.image_hash.hex())  # fmt: skip


@contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    try:
        with path.open("rb") as stream:
            yield stream
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _read(path: Path) -> bytes:
    with _opened(path) as stream:
        return stream.read()


@contextmanager
def _device_extra(command: str) -> Iterator[None]:
    """Imports of the device extra (``cryptography``), named when it is not installed."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise missing_extra(command=command, extra="device", error=exc) from None


def _private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} is not an EC key")
    return key


def _public_key(path: Path) -> ec.EllipticCurvePublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read(path)
    if b"PRIVATE KEY-----" in data:
        return _private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(f"{path} is not an EC key")
    return key
