"""One TUF metadata document: parsed, its shape checked, its signatures counted.

Everything the client later reads is checked here first, so the workflow never
meets a wrong type: a missing, mistyped or out-of-range field is a
``TufError("bad-metadata")`` naming it, and so is JSON that does not parse or
nests too deep. Fields the spec does not define are kept (they are signed).
The canonical bytes the signatures cover are never held: their SHA-256 is
taken once, as they are made.
"""

import hashlib
import json

from device_runtime.core.decimal_digits import is_digits
from device_runtime.core.tuf import canonical_json, keys
from device_runtime.core.tuf.error import TufError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import BinaryFile, TufCrypto

TOP_LEVEL_ROLES = ("root", "snapshot", "targets", "timestamp")
_DAYS_BEFORE_MONTH = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def _bad(what: str) -> TufError:
    return TufError("bad-metadata", what)


def field(obj: "dict[str, object]", name: str, kind: type, what: str) -> "object":
    """``obj[name]`` if it is a *kind* (never a bool for int), else bad-metadata."""
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad(what + "." + name + " is missing or not a " + kind.__name__)
    return value


def _natural(obj: "dict[str, object]", name: str, what: str, least: int) -> int:
    value = field(obj, name, int, what)
    assert isinstance(value, int)
    if value < least:
        raise _bad(what + "." + name + " is below " + str(least))
    return value


def unix_time(text: str) -> int:
    """Seconds since the epoch of an ``expires`` stamp, ``YYYY-MM-DDTHH:MM:SSZ`` exactly."""
    parts = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
    if len(text) != 20:
        raise _bad("expires " + repr(text)[:40] + " is not YYYY-MM-DDTHH:MM:SSZ")
    separators = text[4] + text[7] + text[10] + text[13] + text[16] + text[19:]
    if separators != "--T::Z" or not all(is_digits(p) for p in parts):
        raise _bad("expires " + repr(text)[:40] + " is not YYYY-MM-DDTHH:MM:SSZ")
    year, month, day, hour, minute, second = (int(part) for part in parts)
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    month_days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (1 <= month <= 12 and 1 <= day <= month_days[month - 1]) or hour > 23 or minute > 59:
        raise _bad("expires " + repr(text)[:40] + " is not a valid date")
    y = year - 1
    days = 365 * y + y // 4 - y // 100 + y // 400 - 719162
    days += _DAYS_BEFORE_MONTH[month - 1] + (1 if leap and month > 2 else 0) + day - 1
    return ((days * 24 + hour) * 60 + minute) * 60 + min(second, 59)


def _check_role(role: "dict[str, object]", what: str) -> None:
    keyids = field(role, "keyids", list, what)
    assert isinstance(keyids, list)
    for keyid in keyids:
        if not isinstance(keyid, str):
            raise _bad(what + ".keyids has a keyid that is not a string")
    if len(set(keyids)) != len(keyids):
        raise _bad(what + ".keyids lists a key twice")
    _natural(role, "threshold", what, 1)


def _check_keys(container: "dict[str, object]", what: str) -> None:
    found = field(container, "keys", dict, what)
    assert isinstance(found, dict)
    for keyid, key in found.items():
        if not isinstance(key, dict):
            raise _bad(what + ".keys[" + repr(keyid)[:40] + "] is not an object")
        for name in ("keytype", "scheme"):
            field(key, name, str, what + ".keys")
        field(key, "keyval", dict, what + ".keys")


def _check_metafiles(meta: "dict[str, object]", what: str) -> None:
    for name, info in meta.items():
        if not isinstance(info, dict):
            raise _bad(what + " entry " + repr(name)[:60] + " is not an object")
        _natural(info, "version", what, 1)
        if "length" in info:
            _natural(info, "length", what, 0)
        if "hashes" in info:
            check_hashes(info, what)


def check_hashes(info: "dict[str, object]", what: str) -> None:
    """``info["hashes"]`` must be a non-empty object of strings."""
    hashes = field(info, "hashes", dict, what)
    assert isinstance(hashes, dict)
    if not hashes or not all(isinstance(value, str) for value in hashes.values()):
        raise _bad(what + ".hashes is empty or has a value that is not a string")


def _check_delegations(delegations: "dict[str, object]") -> None:
    _check_keys(delegations, "delegations")
    roles = field(delegations, "roles", list, "delegations")
    assert isinstance(roles, list)
    names = set()
    for role in roles:
        if not isinstance(role, dict):
            raise _bad("a delegated role is not an object")
        name = field(role, "name", str, "delegated role")
        field(role, "terminating", bool, "delegated role " + repr(name)[:40])
        _check_role(role, "delegated role " + repr(name)[:40])
        if name in names or name in TOP_LEVEL_ROLES:
            raise _bad("delegated role name " + repr(name)[:40] + " is repeated or top-level")
        names.add(name)
        patterns = [role.get("paths"), role.get("path_hash_prefixes")]
        if patterns[0] is not None and patterns[1] is not None:
            raise _bad("delegated role " + repr(name)[:40] + " has paths and hash prefixes")
        for listed in patterns:
            if listed is not None and (
                not isinstance(listed, list) or not all(isinstance(p, str) for p in listed)
            ):
                raise _bad("delegated role " + repr(name)[:40] + " patterns are not strings")


def _check_signed(signed: "dict[str, object]", role_type: str) -> None:
    kind = field(signed, "_type", str, "signed")
    if kind != role_type:
        raise _bad("metadata is of type " + repr(kind)[:30] + ", not " + role_type)
    spec = field(signed, "spec_version", str, role_type)
    assert isinstance(spec, str)
    numbers = spec.split(".")
    if numbers[0] != "1" or not 2 <= len(numbers) <= 3 or not all(is_digits(n) for n in numbers):
        raise _bad(role_type + " spec_version " + repr(spec)[:20] + " is not 1.x")
    _natural(signed, "version", role_type, 1)
    field(signed, "expires", str, role_type)
    if role_type == "root":
        _check_keys(signed, "root")
        roles = field(signed, "roles", dict, "root")
        assert isinstance(roles, dict)
        if sorted(roles) != list(TOP_LEVEL_ROLES):
            raise _bad("root.roles does not name exactly the four top-level roles")
        for name, role in roles.items():
            if not isinstance(role, dict):
                raise _bad("root.roles." + name + " is not an object")
            _check_role(role, "root.roles." + name)
        if "consistent_snapshot" in signed:
            field(signed, "consistent_snapshot", bool, "root")
    elif role_type in ("timestamp", "snapshot"):
        meta = field(signed, "meta", dict, role_type)
        assert isinstance(meta, dict)
        if role_type == "timestamp" and (len(meta) != 1 or "snapshot.json" not in meta):
            raise _bad("timestamp.meta does not describe exactly snapshot.json")
        _check_metafiles(meta, role_type + ".meta")
    else:
        targets = field(signed, "targets", dict, "targets")
        assert isinstance(targets, dict)
        for path, info in targets.items():
            what = "target " + repr(path)[:60]
            if not isinstance(info, dict):
                raise _bad(what + " is not an object")
            _natural(info, "length", what, 0)
            check_hashes(info, what)
            if "custom" in info:
                field(info, "custom", dict, what)
        if signed.get("delegations") is not None:
            delegations = field(signed, "delegations", dict, "targets")
            assert isinstance(delegations, dict)
            _check_delegations(delegations)


class Metadata:
    """A document of *role_type* from *source* (bytes, or a file parsed as it is read):
    ``signed`` (checked), ``signatures`` (until counted), ``version``, ``expires``."""

    def __init__(self, source: "bytes | BinaryFile", role_type: str) -> None:
        try:
            if isinstance(source, (bytes, bytearray)):
                document = json.loads(source)
            else:
                document = json.load(source)
        except (ValueError, RuntimeError):  # RecursionError is a RuntimeError
            raise _bad(role_type + " is not valid JSON") from None
        if not isinstance(document, dict):
            raise _bad(role_type + " is not a JSON object")
        signed = field(document, "signed", dict, role_type)
        listed = field(document, "signatures", list, role_type)
        assert isinstance(signed, dict) and isinstance(listed, list)
        self.signatures: dict[str, str] = {}
        for entry in listed:
            if not isinstance(entry, dict):
                raise _bad(role_type + " signature is not an object")
            keyid, sig = entry.get("keyid"), entry.get("sig")
            if not isinstance(keyid, str) or not isinstance(sig, str):
                raise _bad(role_type + " signature keyid or sig is not a string")
            if keyid in self.signatures:
                raise _bad(role_type + " has two signatures by key " + keyid[:16])
            self.signatures[keyid] = sig
        _check_signed(signed, role_type)
        self.signed: dict[str, object] = signed
        self.role_type = role_type
        version = signed["version"]
        assert isinstance(version, int)
        self.version = version
        self.expires = unix_time(str(signed["expires"]))
        hasher = hashlib.sha256()
        canonical_json.encode(signed, hasher)
        self._digest = hasher.digest()

    def verify_by(
        self, delegator: "dict[str, object]", role: "dict[str, object]", crypto: "TufCrypto"
    ) -> None:
        """Raise ``threshold`` unless *role*'s threshold of its keys (from *delegator*) signed."""
        found = delegator["keys"]
        assert isinstance(found, dict)
        valid = 0
        keyids = role["keyids"]
        assert isinstance(keyids, list)
        for keyid in keyids:
            key, signature = found.get(keyid), self.signatures.get(keyid)
            if key is not None and signature is not None:
                if keys.signature_valid(key, signature, self.signed, self._digest, crypto):
                    valid += 1
        threshold = role["threshold"]
        assert isinstance(threshold, int)
        if valid < threshold:
            raise TufError(
                "threshold",
                self.role_type + " has " + str(valid) + " valid signatures of " + str(threshold),
            )
