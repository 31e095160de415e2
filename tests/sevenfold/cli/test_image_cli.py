"""`sevenfold image sign|verify|inspect` as an operator types them, against imgtool's images too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from sevenfold.cli.app import app
from tests.device_runtime.images.cases import KEY, OTHER_KEY
from tests.device_runtime.images.test_imgtool_interop import imgtool

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(arg) for arg in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _pem(directory: Path, name: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
         public: bool = False) -> Path:  # fmt: skip
    path = directory / name
    if public:
        data = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "app.bin").write_bytes(bytes(range(256)) * 40)
    return {
        "firmware": tmp_path / "app.bin",
        "key": _pem(tmp_path, "key.pem", KEY),
        "public": _pem(tmp_path, "public.pem", KEY, public=True),
        "other": _pem(tmp_path, "other.pem", OTHER_KEY, public=True),
        "rsa": _pem(tmp_path, "rsa.pem", rsa.generate_private_key(65537, 2048)),
        "dir": tmp_path,
    }


def _one_error_line(code: int, out: str, words: str) -> None:
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith(("error bad-image: ", "error config: ")), out
    assert words in lines[0], out
    assert "Traceback" not in out


def test_sign_then_verify_with_the_public_or_the_private_key(files: dict[str, Path]) -> None:
    signed = files["dir"] / "app.signed"
    code, out = run("image", "sign", "--key", files["key"], "--version", "1.2.3",
                    "--security-counter", "7", files["firmware"], signed)  # fmt: skip
    assert code == 0 and "version 1.2.3, security counter 7" in out, out
    first = signed.read_bytes()
    code, _ = run("image", "sign", "--key", files["key"], "--version", "1.2.3",
                  "--security-counter", "7", files["firmware"], signed)  # fmt: skip
    assert code == 0 and signed.read_bytes() == first, "signing is reproducible"
    for key in (files["public"], files["key"]):
        code, out = run("image", "verify", "--key", key, signed)
        assert code == 0 and out.startswith(f"valid {signed}: version 1.2.3"), out
    code, out = run("image", "verify", "--key", files["public"], signed, "--json")
    assert code == 0, out
    answer = json.loads(out)
    assert (answer["version"], answer["security_counter"]) == ("1.2.3", 7)
    assert answer["image_size"] == len(first)


def test_verify_refusals_are_one_line_with_the_reason(files: dict[str, Path]) -> None:
    signed = files["dir"] / "app.signed"
    run("image", "sign", "--key", files["key"], "--version", "1.0.0", "--security-counter", "1",
        files["firmware"], signed)  # fmt: skip
    code, out = run("image", "verify", "--key", files["other"], signed)
    _one_error_line(code, out, "signed by another key")
    data = bytearray(signed.read_bytes())
    (files["dir"] / "cut.bin").write_bytes(data[:1000])
    code, out = run("image", "verify", "--key", files["public"], files["dir"] / "cut.bin")
    _one_error_line(code, out, "image body of 10240 bytes truncated at offset 1000")
    data[0x400] ^= 1
    (files["dir"] / "changed.bin").write_bytes(data)
    code, out = run("image", "verify", "--key", files["public"], files["dir"] / "changed.bin")
    _one_error_line(code, out, "is not the image's hash")
    code, out = run("image", "verify", "--key", files["public"], files["firmware"])
    _one_error_line(code, out, "bad magic")
    code, out = run("image", "verify", "--key", files["rsa"], signed)
    _one_error_line(code, out, "is not an EC key")
    code, out = run("image", "verify", "--key", files["firmware"], signed)
    _one_error_line(code, out, "is not a PEM public key")
    code, out = run("image", "verify", "--key", files["public"], files["dir"] / "absent.bin")
    _one_error_line(code, out, "cannot read")


def test_sign_refusals_are_one_line(files: dict[str, Path]) -> None:
    out_path = files["dir"] / "never.bin"
    code, out = run("image", "sign", "--key", files["key"], "--version", "1.2",
                    "--security-counter", "1", files["firmware"], out_path)  # fmt: skip
    _one_error_line(code, out, "version '1.2' is not MAJOR.MINOR.REVISION[+BUILD]")
    code, out = run("image", "sign", "--key", files["public"], "--version", "1.2.3",
                    "--security-counter", "1", files["firmware"], out_path)  # fmt: skip
    _one_error_line(code, out, "is not an unencrypted PEM private key")
    assert not out_path.exists()
    code, out = run("image", "sign", "--key", files["key"], "--version", "1.2.3",
                    "--security-counter", "-1", files["firmware"], out_path)  # fmt: skip
    assert code != 0 and "Traceback" not in out


def test_inspect_shows_an_imgtool_image_without_a_key(files: dict[str, Path]) -> None:
    signed = files["dir"] / "imgtool.bin"
    made = imgtool("sign", "-k", str(files["key"]), "--pad-header", "-H", "0x200", "-v", "1.2.3",
                   "-s", "7", "-S", "0x100000", str(files["firmware"]), str(signed))  # fmt: skip
    assert made.returncode == 0, made.stderr
    code, out = run("image", "inspect", signed)
    assert code == 0, out
    for words in ("version", "1.2.3", "security counter", "SEC_CNT", "ECDSA_SIG", "KEYHASH"):
        assert words in out, (words, out)
    code, out = run("image", "inspect", signed, "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert (shown["version"], shown["security_counter"], shown["hash_matches"]) == (
        "1.2.3",
        7,
        True,
    )
    assert [tlv["name"] for tlv in shown["tlvs"]] == ["SEC_CNT", "SHA256", "KEYHASH", "ECDSA_SIG"]
    checked = imgtool("verify", "-k", str(files["key"]), str(signed))
    assert f"Image digest: {shown['image_hash']}" in checked.stdout
    assert shown["tlvs"][1]["value"] == shown["image_hash"]


def test_inspect_of_what_is_no_image_is_one_line(files: dict[str, Path]) -> None:
    code, out = run("image", "inspect", files["firmware"])
    _one_error_line(code, out, "bad magic 0x03020100 at offset 0")
    code, out = run("image", "inspect", files["firmware"], "--json")
    _one_error_line(code, out, "bad magic")
