"""Site names: how a sensor names the plant it watches, checked the same on both ends."""

from __future__ import annotations

import re

SITE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""Site names follow the device-id rule, so they are safe in URLs, logs and file names."""

_SITE = re.compile(SITE_PATTERN)


def check_site(site: object) -> str:
    """Reject a site name that could not also have been a device id."""
    if not isinstance(site, str) or _SITE.fullmatch(site) is None:
        raise ValueError("site must be 1-63 characters of a-z, 0-9 and '-', not starting with '-'")
    return site
