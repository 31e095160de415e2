"""The verifier's view of trusted manufacturer CAs: cached, and fresh once trust is added."""

from __future__ import annotations

from pathlib import Path

from fleet_platform.manufacturer_cas import trust_manufacturer_ca
from fleet_platform.pki import CertificateAuthority
from sevenfold.attestation_setup import TrustedManufacturers


def test_a_manufacturer_trusted_later_is_seen_and_nothing_is_reread_meanwhile(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    trusted = TrustedManufacturers(state)
    assert trusted() == []
    first = CertificateAuthority.create(
        common_name="Maker A", directory=tmp_path / "a", issues_issuers=True
    )
    trust_manufacturer_ca(state, first.cert_path)
    assert [ca.subject for ca in trusted()] == [first.certificate.subject]
    again = trusted()
    assert again == trusted() and again is not trusted()  # copies of one cached reading
    second = CertificateAuthority.create(
        common_name="Maker B", directory=tmp_path / "b", issues_issuers=True
    )
    trust_manufacturer_ca(state, second.cert_path)
    assert {ca.subject for ca in trusted()} == {
        first.certificate.subject,
        second.certificate.subject,
    }
