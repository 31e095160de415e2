"""The operator's appraisal policy: what evidence the verifier accepts, and for how long.

Built from operator input (a JSON object, a form) by :meth:`Policy.from_dict`,
which refuses anything it does not understand instead of guessing: a typo in a
key or a root of trust would otherwise silently weaken the policy. A Policy
built directly is checked the same way, so no invalid one exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache

from device_runtime.core import protocol
from device_runtime.core.errors import ConfigError

ROOTS_OF_TRUST = frozenset(protocol.ROOTS_OF_TRUST)
MAX_EVIDENCE_AGE_S = (1, 3600)
CERTIFICATE_HOURS = (1, 720)


class InvalidPolicy(ConfigError):
    """Operator input that is not a policy; the reason names the setting."""

    code = "bad-policy"


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """How strict the appraisal is. The defaults are the production policy."""

    allowed_roots: frozenset[str] = field(default=frozenset({"tpm", "dice"}))
    """Root-of-trust kinds accepted; ``software`` (development only) at best gives a warning."""
    min_security_version: int = 0
    allow_debug: bool = False
    max_evidence_age_s: int = 60
    """Seconds between issuing a challenge and appraising the evidence that answers it."""
    require_endorsed_config: bool = False
    """An unendorsed configuration is contraindicated, not a warning."""
    certificate_hours: int = 24
    """Lifetime of the fleet certificate issued after a successful appraisal."""

    def __post_init__(self) -> None:
        roots = self.allowed_roots
        if not isinstance(roots, frozenset) or not all(isinstance(r, str) for r in roots):
            raise InvalidPolicy("allowed_roots must be a set of root-of-trust kinds")
        unknown = sorted(roots - ROOTS_OF_TRUST)
        if unknown:
            raise InvalidPolicy(
                f"allowed_roots: unknown kinds {', '.join(unknown)}"
                f" (known: {', '.join(sorted(ROOTS_OF_TRUST))})"
            )
        if not roots:
            raise InvalidPolicy("allowed_roots is empty: no device could ever attest")
        _integer("min_security_version", self.min_security_version, 0, 0xFFFFFFFF)
        _integer("max_evidence_age_s", self.max_evidence_age_s, *MAX_EVIDENCE_AGE_S)
        _integer("certificate_hours", self.certificate_hours, *CERTIFICATE_HOURS)
        for name in ("allow_debug", "require_endorsed_config"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidPolicy(f"{name} must be true or false")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Policy:
        """A policy from operator input; keys left out keep their defaults."""
        if not isinstance(data, Mapping):
            raise InvalidPolicy("a policy is an object of settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key)[:40] for key in data if key not in known)
        if unknown:
            raise InvalidPolicy(f"unknown settings: {', '.join(unknown)}")
        values = dict(data)
        if "allowed_roots" in values:
            roots = values["allowed_roots"]
            if not isinstance(roots, (list, tuple, set, frozenset)):
                raise InvalidPolicy("allowed_roots must be a list of root-of-trust kinds")
            values["allowed_roots"] = frozenset(roots)
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """JSON-able, and accepted back by :meth:`from_dict`."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["allowed_roots"] = sorted(self.allowed_roots)
        return out

    @property
    def policy_id(self) -> str:
        """Names this exact policy in an attestation result (EAR ``ear.appraisal-policy-id``)."""
        return _policy_id(self)


@lru_cache(maxsize=64)
def _policy_id(policy: Policy) -> str:
    """Cached: a policy is immutable and hashable, and every appraisal names its own."""
    canonical = json.dumps(policy.to_dict(), sort_keys=True, separators=(",", ":"))
    return "policy:sevenfold/" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _integer(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidPolicy(f"{name} must be a whole number from {low} to {high}")
