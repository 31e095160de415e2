"""Interop with MCUboot's reference tool, both ways: the real ``imgtool`` 2.5.0, run as a command.

imgtool 2.5.0 insists on ``--slot-size`` (``-S``) even without ``--pad``; a
1 MiB slot changes nothing in the image, it only bounds its size.
"""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core import signed_image as fmt
from device_runtime.image_signer import public_point, sign_image
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from device_runtime.ports.micropython import crypto as micropython_crypto
from tests.components import binary
from tests.device_runtime.images.cases import outcome, reader

SLOT = "0x100000"
FIRMWARE = bytes((i * 7 + i // 251) & 0xFF for i in range(40_000))


def imgtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("imgtool", "pip install imgtool==2.5.0 (the dev extra)"), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("imgtool")
    made = imgtool("keygen", "-k", str(directory / "key.pem"), "-t", "ecdsa-p256")
    assert made.returncode == 0, made.stderr
    (directory / "in.bin").write_bytes(FIRMWARE)
    return directory


def _key(workdir: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key((workdir / "key.pem").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _imgtool_signed(workdir: Path, name: str, *extra: str, version: str = "1.2.3") -> bytes:
    out = workdir / name
    signed = imgtool("sign", "-k", str(workdir / "key.pem"), "--pad-header", "-H", "0x200",
                     "-v", version, "-s", "7", "-S", SLOT, *extra, str(workdir / "in.bin"),
                     str(out))  # fmt: skip
    assert signed.returncode == 0, signed.stdout + signed.stderr
    return out.read_bytes()


def _imgtool_digest(result: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"Image digest: ([0-9a-f]{64})", result.stdout)
    assert found is not None, result.stdout + result.stderr
    return found.group(1)


def test_an_imgtool_image_verifies_with_ours_on_both_ports(workdir: Path) -> None:
    data = _imgtool_signed(workdir, "imgtool.bin")
    point = public_point(_key(workdir).public_key())
    for verify_signature in (verify_ecdsa_der, micropython_crypto.verify_ecdsa_der):
        verified = fmt.verify(reader(data), point, verify_signature)
        assert (verified.version, verified.security_counter) == ("1.2.3", 7)
        assert verified.size == len(data)
    checked = imgtool("verify", "-k", str(workdir / "key.pem"), str(workdir / "imgtool.bin"))
    assert _imgtool_digest(checked) == verified.image_hash.hex()


def test_our_image_verifies_with_imgtool(workdir: Path) -> None:
    ours = sign_image(FIRMWARE, key=_key(workdir), version="1.2.3", security_counter=7)
    (workdir / "ours.bin").write_bytes(ours)
    checked = imgtool("verify", "-k", str(workdir / "key.pem"), str(workdir / "ours.bin"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Image was correctly validated" in checked.stdout
    assert "Image version: 1.2.3+0" in checked.stdout
    point = public_point(_key(workdir).public_key())
    assert (
        _imgtool_digest(checked)
        == fmt.verify(reader(ours), point, verify_ecdsa_der).image_hash.hex()
    )


def test_imgtool_refuses_our_image_changed_or_under_another_key(workdir: Path) -> None:
    ours = bytearray(sign_image(FIRMWARE, key=_key(workdir), version="1.2.3", security_counter=7))
    ours[0x300] ^= 1
    (workdir / "changed.bin").write_bytes(ours)
    checked = imgtool("verify", "-k", str(workdir / "key.pem"), str(workdir / "changed.bin"))
    assert checked.returncode != 0 and "Image was correctly validated" not in checked.stdout
    other = ec.generate_private_key(ec.SECP256R1())
    (workdir / "other.bin").write_bytes(
        sign_image(FIRMWARE, key=other, version="1.2.3", security_counter=7)
    )
    checked = imgtool("verify", "-k", str(workdir / "key.pem"), str(workdir / "other.bin"))
    assert checked.returncode != 0 and "Image was correctly validated" not in checked.stdout


def test_ours_and_imgtools_differ_only_in_the_signature(workdir: Path) -> None:
    theirs = _imgtool_signed(workdir, "first.bin")
    again = _imgtool_signed(workdir, "second.bin")
    ours = sign_image(FIRMWARE, key=_key(workdir), version="1.2.3", security_counter=7)
    tlvs_at = 0x200 + len(FIRMWARE) + 12
    assert ours[:tlvs_at] == theirs[:tlvs_at] == again[:tlvs_at]
    mine, imgtools, imgtools_again = (fmt.inspect(reader(d)).tlvs for d in (ours, theirs, again))
    assert list(mine) == list(imgtools) == [fmt.SEC_CNT, fmt.SHA256, fmt.KEYHASH, fmt.ECDSA_SIG]
    for kind in (fmt.SEC_CNT, fmt.SHA256, fmt.KEYHASH):
        assert mine[kind] == imgtools[kind]
    # imgtool's nonces are random, ours RFC 6979's: its two signatures differ, ours repeat.
    assert imgtools[fmt.ECDSA_SIG][1] != imgtools_again[fmt.ECDSA_SIG][1]
    assert ours == sign_image(FIRMWARE, key=_key(workdir), version="1.2.3", security_counter=7)
    # The TLV area's size, and the signature's length, follow the DER signature's length only.
    difference = len(mine[fmt.ECDSA_SIG][1]) - len(imgtools[fmt.ECDSA_SIG][1])
    assert len(ours) - len(theirs) == difference
    ours_total, theirs_total = (struct.unpack_from("<HH", d, tlvs_at)[1] for d in (ours, theirs))
    assert ours_total - theirs_total == difference


def test_an_imgtool_image_with_its_tlvs_reordered_is_refused_though_imgtool_takes_it(
    workdir: Path,
) -> None:
    """The TLV area is not hashed: anyone can put the signature before the KEYHASH. imgtool
    still validates that image; MCUboot ignores a signature no KEYHASH came before and refuses
    it, so the device's verifier must refuse it too, or an image would pass every check here
    and brick the board."""
    data = _imgtool_signed(workdir, "inorder.bin")
    tlvs = fmt.inspect(reader(data)).tlvs
    start = tlvs[fmt.SHA256][0] - fmt.TLV_HEADER_SIZE
    body = b"".join(struct.pack(fmt.TLV_FORMAT, kind, len(tlvs[kind][1])) + tlvs[kind][1]
                    for kind in (fmt.SHA256, fmt.ECDSA_SIG, fmt.KEYHASH))  # fmt: skip
    reordered = data[:start] + struct.pack(fmt.TLV_FORMAT, fmt.TLV_INFO_MAGIC, 4 + len(body)) + body
    (workdir / "reordered.bin").write_bytes(reordered)
    checked = imgtool("verify", "-k", str(workdir / "key.pem"), str(workdir / "reordered.bin"))
    assert "Image was correctly validated" in checked.stdout
    point = public_point(_key(workdir).public_key())
    assert outcome(data, point=point) == "ok"
    assert "follows TLV 0x22" in outcome(reordered, point=point)
    assert "MCUboot ignores a signature before its KEYHASH" in outcome(reordered, point=point)


def test_an_imgtool_build_number_comes_back(workdir: Path) -> None:
    data = _imgtool_signed(workdir, "build.bin", version="1.2.3+4")
    assert fmt.inspect(reader(data)).version == "1.2.3+4"


def test_an_imgtool_image_carrying_the_whole_key_is_refused_with_the_reason(workdir: Path) -> None:
    data = _imgtool_signed(workdir, "full.bin", "--public-key-format", "full")
    point = public_point(_key(workdir).public_key())
    assert "TLV 0x02 at offset" in outcome(data, point=point)
    assert "is not one the TLV area may hold" in outcome(data, point=point)


def test_a_slot_padded_imgtool_image_verifies_and_the_trailer_is_not_read(workdir: Path) -> None:
    data = _imgtool_signed(workdir, "padded.bin", "--pad")
    assert len(data) == int(SLOT, 16)
    point = public_point(_key(workdir).public_key())
    verified = fmt.verify(reader(data), point, verify_ecdsa_der)
    tlvs_at = 0x200 + len(FIRMWARE) + 12
    assert verified.size == tlvs_at + struct.unpack_from("<HH", data, tlvs_at)[1]
    assert verified.size < len(data) and set(data[verified.size : verified.size + 64]) == {0xFF}


def test_imgtool_images_this_verifier_does_not_take_are_refused_with_the_reason(
    workdir: Path,
) -> None:
    point = public_point(_key(workdir).public_key())
    # --pad-sig zero-pads a DER signature to 72 bytes, which strict DER refuses. A quarter of
    # imgtool's random signatures are 72 bytes already (r and s both need 33 bytes), so sign
    # until the padding is really there.
    for attempt in range(32):
        padded_signature = _imgtool_signed(workdir, f"padsig{attempt}.bin", "--pad-sig")
        der_signature = fmt.inspect(reader(padded_signature)).value(fmt.ECDSA_SIG)
        if der_signature[1] + 2 < len(der_signature):
            break
    assert "does not verify" in outcome(padded_signature, point=point)
    without_counter = workdir / "nocounter.bin"
    signed = imgtool("sign", "-k", str(workdir / "key.pem"), "--pad-header", "-H", "0x200",
                     "-v", "1.2.3", "-S", SLOT, str(workdir / "in.bin"),
                     str(without_counter))  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert outcome(without_counter.read_bytes(), point=point) == "the image has no TLV 0x50"
    # What no board here can honour: a slot MCUboot would not boot, a load address to run from.
    for flag, extra in (("0x10", ["--non-bootable"]), ("0x100", ["--rom-fixed", "0x8000"]),
                        ("0x20", ["--load-addr", "0x20000000"])):  # fmt: skip
        reason = outcome(_imgtool_signed(workdir, f"flags{flag}.bin", *extra), point=point)
        assert reason.startswith(f"flags {flag} at offset 16"), reason
