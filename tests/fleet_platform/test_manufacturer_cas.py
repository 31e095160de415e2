"""Trusting a manufacturer CA: a private copy in the state directory, and only of a CA."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from device_runtime.core.errors import ConfigError
from fleet_platform.manufacturer_cas import trust_manufacturer_ca, trusted_manufacturer_cas
from fleet_platform.pki import CertificateAuthority


def test_a_trusted_ca_is_kept_under_its_digest_readable_only_by_the_server(
    tmp_path: Path,
) -> None:
    maker = CertificateAuthority.create(
        common_name="Maker", directory=tmp_path / "maker", issues_issuers=True
    )
    state = tmp_path / "state"
    assert trusted_manufacturer_cas(state) == []
    written = trust_manufacturer_ca(state, maker.cert_path)
    der = maker.certificate.public_bytes(serialization.Encoding.DER)
    assert written == state / "manufacturer-cas" / f"{hashlib.sha256(der).hexdigest()}.pem"
    assert written.stat().st_mode & 0o777 == 0o600
    assert trust_manufacturer_ca(state, maker.cert_path.read_bytes()) == written
    assert trusted_manufacturer_cas(state) == [maker.certificate]


def test_what_is_not_a_ca_certificate_is_refused(tmp_path: Path) -> None:
    fleet = CertificateAuthority.create(common_name="Fleet", directory=tmp_path / "fleet")
    leaf = fleet.issue_client(common_name="tool-1", directory=tmp_path / "leaf")
    state = tmp_path / "state"
    for source in (leaf.cert_path, b"not pem", tmp_path / "missing.pem"):
        with pytest.raises(ConfigError):
            trust_manufacturer_ca(state, source)
    assert trusted_manufacturer_cas(state) == []
    (state / "manufacturer-cas").mkdir(parents=True)
    (state / "manufacturer-cas" / "planted.pem").write_bytes(leaf.cert_path.read_bytes())
    assert trusted_manufacturer_cas(state) == []
