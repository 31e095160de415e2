"""One uploaded outbox record, checked: what it is, or the specific reason it is refused.

The outbox's framing (length, key, CRC) was checked by :func:`outbox.parse`;
this reads the payload, a CBOR map written by
:mod:`device_runtime.core.failure_capture`, within small limits, and refuses
it with a reason that starts with a stable code: ``malformed`` (not a map of
the fields its kind has, or a value of the wrong type or out of range),
``too-large`` (a text over what the capture writes, its cut marker
included), ``unknown-kind``, ``unknown-reboot-reason``,
``unknown-security-event``, ``identity-mismatch`` (a ``device`` field naming
a device other than the certificate's: the identity is never the payload's).
A refused record is settled all the same (acknowledged with the refusal), so
a device never sends it again.

What grouping will need is derived here: ``fingerprint_input`` is the
exception type and the frames normalized (the file's base name and the
function, no line numbers: a line moves with every release), one per line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from device_runtime.core import cbor
from device_runtime.core.errors import ProtocolError
from device_runtime.core.failure_capture import (
    KINDS,
    MAX_FILE,
    MAX_FRAMES,
    MAX_TEXT,
    REBOOT_REASONS,
    SECURITY_EVENTS,
)
from device_runtime.core.protocol import MAX_COUNTER, is_control, shown

FINGERPRINT_VERSION = 1
"""Bumped when the normalization changes, so groups of two versions are never merged."""
_COMMON = ("k", "fw", "up", "device")
_FIELDS = {
    "crash": (*_COMMON, "type", "msg", "frames", "omitted"),
    "reboot": (*_COMMON, "reason"),
    "security": (*_COMMON, "event", "detail"),
    "metrics": (*_COMMON, "crash_free_s", "free_mem", "reconnects"),
}
_MAX_VERSION = 32


class Refused(Exception):
    """The record is settled unrecorded; ``code`` says why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code


@dataclass(frozen=True, slots=True)
class CheckedRecord:
    """A record's columns (``tables.FailureRecord``'s, less key, device and time)."""

    kind: str
    firmware: str
    uptime_s: int
    code: str | None = None
    message: str | None = None
    frames: str | None = None
    frames_omitted: int | None = None
    fingerprint_input: str | None = None
    metrics: str | None = None


def _text(body: dict[str, object], name: str, limit: int, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise Refused("malformed", f"{name} is {shown(value)}, not text")
    if len(value) > limit:
        raise Refused("too-large", f"{name} is {len(value)} characters, over {limit}")
    if any(is_control(ch) for ch in value):
        raise Refused("malformed", f"{name} has a control character")
    return value


def _count(body: dict[str, object], name: str, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNTER:
        raise Refused("malformed", f"{name} is {shown(value)}, not a count")
    return value


def normalized_frame(file: str, function: str) -> str:
    return file.rsplit("/", 1)[-1] + ":" + function


def check(payload: bytes, device_id: str) -> CheckedRecord:
    """The record *payload* is, uploaded by *device_id* (its certificate's), or Refused."""
    try:
        body = cbor.loads(payload, 4, 3 * MAX_FRAMES, 8 * MAX_FRAMES)
    except ProtocolError as exc:
        raise Refused("malformed", exc.reason) from exc
    if not isinstance(body, dict) or not all(isinstance(key, str) for key in body):
        raise Refused("malformed", "the record is not a map with text keys")
    kind = body.get("k")
    if kind not in KINDS:
        raise Refused("unknown-kind", f"kind {shown(kind)} is not one of {', '.join(KINDS)}")
    assert isinstance(kind, str)
    extra = set(body) - set(_FIELDS[kind])
    if extra:
        raise Refused("malformed", f"a {kind} record has no field {shown(sorted(extra)[0])}")
    claimed = body.get("device")
    if claimed is not None and claimed != device_id:
        raise Refused("identity-mismatch", f"the record names {shown(claimed)}")
    firmware = _text(body, "fw", _MAX_VERSION)
    uptime = _count(body, "up")
    assert firmware is not None and uptime is not None
    if kind == "crash":
        return _crash(body, firmware, uptime)
    if kind == "reboot":
        reason = _text(body, "reason", 32)
        if reason not in REBOOT_REASONS:
            raise Refused("unknown-reboot-reason", f"{shown(reason)} is not a reboot reason")
        return CheckedRecord(kind, firmware, uptime, code=reason)
    if kind == "security":
        event = _text(body, "event", 32)
        if event not in SECURITY_EVENTS:
            raise Refused("unknown-security-event", f"{shown(event)} is not a security event")
        detail = _text(body, "detail", MAX_TEXT)
        return CheckedRecord(kind, firmware, uptime, code=event, message=detail)
    figures = {name: _count(body, name) for name in ("crash_free_s", "free_mem", "reconnects")}
    return CheckedRecord(kind, firmware, uptime, metrics=json.dumps(figures, sort_keys=True))


def _crash(body: dict[str, object], firmware: str, uptime: int) -> CheckedRecord:
    exc_type = _text(body, "type", MAX_TEXT)
    message = _text(body, "msg", MAX_TEXT)
    raw = body.get("frames")
    if not isinstance(raw, list) or len(raw) > MAX_FRAMES:
        raise Refused("malformed", f"frames must be a list of at most {MAX_FRAMES}")
    frames: list[tuple[str, int, str]] = []
    for frame in raw:
        if not isinstance(frame, list) or len(frame) != 3:
            raise Refused("malformed", "a frame is not [file, line, function]")
        parts = dict(zip(("file", "line", "function"), frame, strict=True))
        file = _text(parts, "file", MAX_FILE)
        line = _count(parts, "line")
        function = _text(parts, "function", MAX_TEXT)
        assert file is not None and line is not None and function is not None
        frames.append((file, line, function))
    fingerprint = "\n".join(
        [f"v{FINGERPRINT_VERSION}", str(exc_type)]
        + [normalized_frame(file, function) for file, _, function in frames]
    )
    return CheckedRecord(
        "crash",
        firmware,
        uptime,
        code=exc_type,
        message=message,
        frames=json.dumps([list(frame) for frame in frames]),
        frames_omitted=_count(body, "omitted", required=False),
        fingerprint_input=fingerprint,
    )
