"""The sensor app's releases, and the payload each one's image carries.

Every release is the same application (``app.py``) with its own release
configuration: the build rewrites the block between the configuration markers
and nothing else, so the difference between two images' payloads is exactly
the difference between their releases' settings. The security counter rises
with every release, so each one can be published over the one before it
(a release service refuses a counter below the current release's).

1.2.0 and 1.3.0 are broken on purpose, for revert and rollout-halt demos:
1.2.0's sampling period of 0 divides by zero as the sensors come up (the
board reports a boot failure); 1.3.0's calibration offset puts the temperature
far below the sensor's rated range, so it boots but fails its health check.

:func:`tampered_payload` is a release as an attacker changed it, for the demo
and the tests of what attestation refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from device_runtime.core.errors import ConfigError

APP_NAME = "sensor-app"
SOURCE = Path(__file__).with_name("app.py")
BEGIN = b"# --- release configuration ---\n"
END = b"# --- end of release configuration ---\n"


@dataclass(frozen=True, slots=True)
class Release:
    """One release: its version, its security counter and the settings it ships with."""

    version: str
    security_counter: int
    readings: tuple[str, ...]
    sample_period_s: int
    calibration: int
    demonstrates: str

    @property
    def image_name(self) -> str:
        return f"{APP_NAME}-{self.version}.img"


UPDATE = Release(
    version="1.1.0",
    security_counter=2,
    readings=("temperature", "humidity"),
    sample_period_s=5,
    calibration=0,
    demonstrates="an update: a humidity reading too, sampled twice as often",
)
RELEASES: tuple[Release, ...] = (
    Release(
        version="1.0.0",
        security_counter=1,
        readings=("temperature",),
        sample_period_s=10,
        calibration=0,
        demonstrates="the first release: a temperature reading every 10 s",
    ),
    UPDATE,
    # The broken releases are 1.1.0 with one setting wrong each.
    replace(
        UPDATE,
        version="1.2.0",
        security_counter=3,
        sample_period_s=0,
        demonstrates="crashes on boot (a sampling period of 0): a revert",
    ),
    replace(
        UPDATE,
        version="1.3.0",
        security_counter=4,
        calibration=-30000,
        demonstrates="boots, fails its health check (a calibration 300 C off): a halted rollout",
    ),
)


def release(version: str) -> Release:
    """The release called *version*; ConfigError naming the known ones otherwise."""
    for candidate in RELEASES:
        if candidate.version == version:
            return candidate
    known = ", ".join(r.version for r in RELEASES)
    raise ConfigError(f"{APP_NAME} has no release {version!r} (releases: {known})")


def configuration(chosen: Release) -> bytes:
    """The release's configuration lines, as Python the application reads at import."""
    lines = (
        f"READINGS = {chosen.readings!r}\n"
        f"SAMPLE_PERIOD_S = {chosen.sample_period_s!r}\n"
        f"CALIBRATION = {chosen.calibration!r}\n"
    )
    return lines.encode("ascii")


def payload(chosen: Release, source: bytes | None = None) -> bytes:
    """The image payload of *chosen*: the application's source (UTF-8, as stored) with its
    release configuration written in. Bytes in, bytes out: no file metadata, no locale."""
    text = SOURCE.read_bytes() if source is None else source
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ConfigError(f"{SOURCE.name} must hold one release configuration block")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return head + BEGIN + configuration(chosen) + END + tail


TAMPERING = b"""
# Added by an attacker: every reading reports a comfortable room, whatever the sensor reads.
def sample(state, uptime_s):
    return {"temperature": 2100}
"""


def tampered_payload(chosen: Release) -> bytes:
    """*chosen*'s payload with an attacker's change: the readings replaced by a fixed value,
    as sabotage that hides itself would. Signed with the release key (a compromised build
    server, a leaked key) it boots; its hash is no release's, so attestation refuses it."""
    return payload(chosen) + TAMPERING
