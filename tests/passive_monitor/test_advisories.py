"""Vulnerability hints: the shipped sample, version ranges, and malformed advisory files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from passive_monitor.advisories import (
    AdvisoryFormatError,
    load_advisories,
    match,
    parse_advisories,
    parse_version,
)
from passive_monitor.inventory import Asset, InventoryBuilder
from passive_monitor.sensor import Sensor
from tests.components import shared_dir


def assets_of(name: str) -> tuple[Asset, ...]:
    builder = InventoryBuilder()
    for observation in Sensor().observe_file(shared_dir("pcaps") / name):
        builder.observe(observation)
    return builder.snapshot().assets


def test_the_shipped_sample_loads_and_names_the_required_vendors() -> None:
    advisories = load_advisories()
    vendors = {a.vendor for a in advisories}
    assert {"Siemens", "Schneider", "Rockwell"} <= vendors
    assert all(a.cve.startswith("CVE-") for a in advisories)


def test_s7_300_firmware_from_the_wire_matches_its_advisories() -> None:
    hints = match(assets_of("s7comm/s7ident.pcap"), load_advisories())
    by_cve = {h.cve: h for h in hints}
    # CPU 315-2 PN/DP at V3.2.6, below the fixed releases of these advisories.
    assert {"CVE-2016-9158", "CVE-2016-9159", "CVE-2017-12741"} <= set(by_cve)
    assert all(h.confidence == "affected" and h.firmware == "V3.2.6" for h in hints)
    assert not any(h.cve == "CVE-2020-15782" for h in hints), "S7-1200 advisory on an S7-300"


def test_rockwell_module_from_list_identity() -> None:
    hints = match(assets_of("enip/enip_test.pcap"), load_advisories())
    assert {h.cve for h in hints} == {"CVE-2012-6438", "CVE-2012-6442"}
    assert {h.ip for h in hints} == {"10.1.1.164"}


def test_firmware_past_a_fix_clears_only_that_cve_and_unknown_firmware_is_flagged_as_such() -> None:
    advisories = load_advisories()
    patched = Asset(
        ip="10.0.0.9", vendor="Siemens", product="6ES7 315-2EH14-0AB0", firmware="V3.2.17"
    )
    unknown = Asset(ip="10.0.0.9", vendor="Siemens", product="6ES7 315-2EH14-0AB0")
    # V3.2.17 is past the V3.X.16 fix for CVE-2017-12741; SSA-731239 names no fixed
    # firmware, so CVE-2016-9158/9159 still apply.
    patched_cves = {h.cve for h in match((patched,), advisories)}
    assert patched_cves == {"CVE-2016-9158", "CVE-2016-9159"}
    unknown_hints = match((unknown,), advisories)
    assert unknown_hints and {h.confidence for h in unknown_hints} == {"version-unknown"}


def test_vendor_must_match_as_well_as_product() -> None:
    other = Asset(ip="10.0.0.9", vendor="Acme", product="6ES7 315-2EH14-0AB0", firmware="1.0")
    assert match((other,), load_advisories()) == []


@pytest.mark.parametrize(
    ("text", "version"),
    [("V3.2.6", (3, 2, 6)), ("4.03", (4, 3)), ("1.2.3.6", (1, 2, 3, 6)), ("none", None)],
)
def test_parse_version(text: str, version: tuple[int, ...] | None) -> None:
    assert parse_version(text) == version


GOOD_ENTRY = {
    "cve": "CVE-2021-22779",
    "title": "t",
    "vendor": "Schneider",
    "products": ["BMX P34"],
    "severity": "critical",
    "affected": [{"introduced": "0", "fixed": "3.40"}],
}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a sevenfold-advisories document"),
        ({"format": "sevenfold-advisories", "version": 7}, "unsupported version"),
        ({"format": "sevenfold-advisories", "version": 1, "advisories": {}}, "must be a list"),
        ({"cve": "CVE-21-1"}, "cve must look like"),
        ({"vendor": ""}, "vendor must be non-empty"),
        ({"products": []}, "products must be a non-empty list"),
        ({"severity": "urgent"}, "severity must be one of"),
        ({"affected": []}, "affected must be a non-empty list"),
        ({"affected": [{"introduced": 3}]}, "introduced must be a version string"),
        ({"affected": [{"introduced": "2.0", "fixed": "1.0"}]}, "is not above introduced"),
        ({"affected": [{"introduced": "1.0", "fixed": 2}]}, "fixed must be a version string"),
    ],
)
def test_malformed_advisories_are_rejected(document: object, message: str) -> None:
    if isinstance(document, dict) and "format" not in document:
        document = {
            "format": "sevenfold-advisories",
            "version": 1,
            "advisories": [{**GOOD_ENTRY, **document}],
        }
    with pytest.raises(AdvisoryFormatError, match=message):
        parse_advisories(document)


def test_an_advisory_file_replaces_the_sample(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_text(
        json.dumps(
            {
                "format": "sevenfold-advisories",
                "version": 1,
                "advisories": [{**GOOD_ENTRY, "vendor": "Siemens", "products": ["6ES7 315"]}],
            }
        )
    )
    hints = match(assets_of("s7comm/s7ident.pcap"), load_advisories(path))
    assert [h.cve for h in hints] == ["CVE-2021-22779"]


@pytest.mark.parametrize(("raw", "message"), [(b"{", "not JSON"), (b"\xff\xfe", "not UTF-8")])
def test_unreadable_advisory_files_are_rejected(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "feed.json"
    path.write_bytes(raw)
    with pytest.raises(AdvisoryFormatError, match=message):
        load_advisories(path)
