"""The build machine's signer: imgtool's layout, byte-reproducible, and strict about its inputs."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core import signed_image as fmt
from device_runtime.core.signed_image import ImageError
from device_runtime.image_signer import parse_version, sign_image
from tests.device_runtime.images.cases import KEY, OTHER_KEY, PAYLOAD, image, outcome, reader


def test_the_same_inputs_give_the_same_bytes() -> None:
    assert image() == image()
    assert image() != image(key=OTHER_KEY)
    assert image() != sign_image(PAYLOAD, key=KEY, version="1.2.3", security_counter=8)


def test_the_header_is_imgtools_with_erased_flash_padding() -> None:
    data = image()
    header = struct.unpack(fmt.HEADER_FORMAT, data[: fmt.HEADER_SIZE])
    assert header == (fmt.IMAGE_MAGIC, 0, 0x200, 12, len(PAYLOAD), 0, 1, 2, 3, 0, 0)
    assert data[fmt.HEADER_SIZE : 0x200] == b"\xff" * (0x200 - fmt.HEADER_SIZE)
    assert data[0x200 : 0x200 + len(PAYLOAD)] == PAYLOAD
    protected = data[0x200 + len(PAYLOAD) :][:12]
    assert protected == struct.pack("<HHHHI", 0x6908, 12, 0x50, 4, 7)


@pytest.mark.parametrize(
    ("text", "fields", "shown"),
    [
        ("1.2.3", (1, 2, 3, 0), "1.2.3"),
        ("0.0.0", (0, 0, 0, 0), "0.0.0"),
        ("255.255.65535+4294967295", (255, 255, 65535, 4294967295), "255.255.65535+4294967295"),
        ("1.10.0+42", (1, 10, 0, 42), "1.10.0+42"),
    ],
)
def test_versions_are_imgtools_syntax_and_come_back_as_written(
    text: str, fields: tuple[int, int, int, int], shown: str
) -> None:
    assert parse_version(text) == fields
    signed = sign_image(b"app", key=KEY, version=text, security_counter=0)
    assert fmt.inspect(reader(signed)).version == shown


@pytest.mark.parametrize(
    "text", ["1.2", "1.2.3.4", "v1.2.3", "1.2.3+", "256.0.0", "0.0.65536", "-1.0.0", ""]
)
def test_versions_the_header_cannot_hold_are_refused(text: str) -> None:
    with pytest.raises(ImageError, match="version"):
        parse_version(text)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"security_counter": -1}, "security counter -1"),
        ({"security_counter": 1 << 32}, "security counter 4294967296"),
        ({"header_size": 31}, "header size 31"),
        ({"header_size": 0x10000}, "header size 65536"),
    ],
)
def test_out_of_range_options_are_refused(options: dict[str, int], words: str) -> None:
    arguments: dict[str, int] = {"security_counter": 1, "header_size": 0x200, **options}
    with pytest.raises(ImageError, match=words):
        sign_image(PAYLOAD, key=KEY, version="1.0.0", **arguments)


def test_a_key_on_another_curve_is_refused() -> None:
    with pytest.raises(ImageError, match="secp384r1, not P-256"):
        sign_image(PAYLOAD, key=ec.generate_private_key(ec.SECP384R1()), version="1.0.0",
                   security_counter=1)  # fmt: skip


def test_an_image_over_the_verifiers_limit_is_not_made() -> None:
    with pytest.raises(ImageError, match="over the 268435456 limit"):
        sign_image(bytes(fmt.MAX_IMAGE_SIZE), key=KEY, version="1.0.0", security_counter=1)


@pytest.mark.parametrize("header_size", [32, 0x100, 0x1000])
def test_any_header_size_verifies(header_size: int) -> None:
    signed = sign_image(PAYLOAD, key=KEY, version="2.0.0", security_counter=3,
                        header_size=header_size)  # fmt: skip
    assert outcome(signed) == "ok"
    assert fmt.inspect(reader(signed)).header_size == header_size


def test_an_empty_payload_is_an_image_too() -> None:
    assert outcome(sign_image(b"", key=KEY, version="1.0.0", security_counter=0)) == "ok"
