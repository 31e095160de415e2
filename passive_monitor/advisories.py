"""Vulnerability hints: the passive inventory matched against published advisories.

Patching a PLC means a plant outage, so operators need to know which
controllers are actually exposed before they plan one. The inventory knows
vendor, order number and firmware from identity traffic; an advisory names
vendor, products and affected firmware ranges. A match is only a hint: when the
firmware was never seen on the wire it is reported as "version unknown" rather
than silently dropped or claimed as affected.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from device_runtime.core.errors import SevenfoldError
from passive_monitor.inventory import Asset

FORMAT = "sevenfold-advisories"
VERSION = 1
SEVERITIES = ("low", "medium", "high", "critical")

Confidence = Literal["affected", "version-unknown"]


class AdvisoryFormatError(SevenfoldError):
    """The advisory file is malformed; matching against half of it would hide exposures."""

    code = "bad-advisories"


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionRange:
    """``introduced`` <= version < ``fixed``; no ``fixed`` means still unfixed."""

    introduced: tuple[int, ...]
    fixed: tuple[int, ...] | None

    def contains(self, version: tuple[int, ...]) -> bool:
        if _compare(version, self.introduced) < 0:
            return False
        return self.fixed is None or _compare(version, self.fixed) < 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Advisory:
    cve: str
    title: str
    vendor: str
    products: tuple[str, ...]
    severity: str
    affected: tuple[VersionRange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class VulnerabilityHint:
    """One advisory that probably applies to one asset."""

    ip: str
    cve: str
    title: str
    severity: str
    firmware: str | None
    confidence: Confidence

    def to_dict(self) -> dict[str, str | None]:
        return {
            "ip": self.ip,
            "cve": self.cve,
            "title": self.title,
            "severity": self.severity,
            "firmware": self.firmware,
            "confidence": self.confidence,
        }


def parse_version(text: str) -> tuple[int, ...] | None:
    """Numeric parts of a firmware string (``V3.2.6`` -> (3, 2, 6)); None when there are none."""
    parts = re.findall(r"\d+", text)
    return tuple(int(part) for part in parts) if parts else None


def _compare(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    width = max(len(a), len(b))
    left = a + (0,) * (width - len(a))
    right = b + (0,) * (width - len(b))
    return (left > right) - (left < right)


def _normal(text: str) -> str:
    return re.sub(r"[\s\-_/]", "", text).lower()


def load_advisories(path: Path | None = None) -> tuple[Advisory, ...]:
    """The advisories in *path*, or the shipped sample when *path* is None."""
    if path is None:
        text = resources.files("passive_monitor.data").joinpath("advisories.json").read_text()
        source = "built-in advisories"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise AdvisoryFormatError(f"{path}: not UTF-8 text") from exc
        source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AdvisoryFormatError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    return parse_advisories(data, source=source)


def parse_advisories(data: object, *, source: str = "advisories") -> tuple[Advisory, ...]:
    """Validate every entry; the first defect is reported with its position."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise AdvisoryFormatError(f"{source}: not a {FORMAT} document")
    if data.get("version") != VERSION:
        raise AdvisoryFormatError(f"{source}: unsupported version {data.get('version')!r}")
    entries = data.get("advisories")
    if not isinstance(entries, list):
        raise AdvisoryFormatError(f"{source}: 'advisories' must be a list")
    return tuple(_advisory(entry, f"{source}: advisories[{i}]") for i, entry in enumerate(entries))


def _advisory(entry: object, where: str) -> Advisory:
    if not isinstance(entry, dict):
        raise AdvisoryFormatError(f"{where} must be an object")
    cve = entry.get("cve")
    if not isinstance(cve, str) or not re.fullmatch(r"CVE-\d{4}-\d{4,}", cve):
        raise AdvisoryFormatError(f"{where}: cve must look like CVE-YYYY-NNNN, got {cve!r}")
    for key in ("title", "vendor"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise AdvisoryFormatError(f"{where} ({cve}): {key} must be non-empty text")
    products = entry.get("products")
    if (
        not isinstance(products, list)
        or not products
        or not all(isinstance(p, str) and p.strip() for p in products)
    ):
        raise AdvisoryFormatError(f"{where} ({cve}): products must be a non-empty list of text")
    severity = entry.get("severity")
    if severity not in SEVERITIES:
        raise AdvisoryFormatError(f"{where} ({cve}): severity must be one of {SEVERITIES}")
    ranges = entry.get("affected")
    if not isinstance(ranges, list) or not ranges:
        raise AdvisoryFormatError(f"{where} ({cve}): affected must be a non-empty list")
    return Advisory(
        cve=cve,
        title=entry["title"],
        vendor=entry["vendor"],
        products=tuple(products),
        severity=str(severity),
        affected=tuple(
            _range(item, f"{where} ({cve}) affected[{j}]") for j, item in enumerate(ranges)
        ),
    )


def _range(item: object, where: str) -> VersionRange:
    if not isinstance(item, dict):
        raise AdvisoryFormatError(f"{where} must be an object")
    introduced = item.get("introduced")
    fixed = item.get("fixed")
    low = parse_version(introduced) if isinstance(introduced, str) else None
    if low is None:
        raise AdvisoryFormatError(f"{where}: introduced must be a version string")
    if fixed is None:
        return VersionRange(introduced=low, fixed=None)
    high = parse_version(fixed) if isinstance(fixed, str) else None
    if high is None:
        raise AdvisoryFormatError(f"{where}: fixed must be a version string or null")
    if _compare(high, low) <= 0:
        raise AdvisoryFormatError(f"{where}: fixed {fixed!r} is not above introduced")
    return VersionRange(introduced=low, fixed=high)


def _applies(advisory: Advisory, asset: Asset) -> bool:
    makers = f"{asset.vendor or ''} {asset.mac_vendor or ''}".lower()
    if advisory.vendor.lower() not in makers:
        return False
    names = [_normal(text) for text in (asset.product, asset.model) if text]
    return any(_normal(product) in name for product in advisory.products for name in names)


def match(assets: tuple[Asset, ...], advisories: tuple[Advisory, ...]) -> list[VulnerabilityHint]:
    """Hints for every asset an advisory names; unknown firmware is flagged, not assumed."""
    hints: list[VulnerabilityHint] = []
    for asset in assets:
        version = parse_version(asset.firmware) if asset.firmware else None
        for advisory in advisories:
            if not _applies(advisory, asset):
                continue
            if version is None:
                confidence: Confidence = "version-unknown"
            elif any(r.contains(version) for r in advisory.affected):
                confidence = "affected"
            else:
                continue
            hints.append(
                VulnerabilityHint(
                    ip=asset.ip,
                    cve=advisory.cve,
                    title=advisory.title,
                    severity=advisory.severity,
                    firmware=asset.firmware,
                    confidence=confidence,
                )
            )
    return hints
