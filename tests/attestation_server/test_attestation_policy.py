"""The operator's policy: built from a dict, refused by name for any value it cannot mean."""

from __future__ import annotations

import pytest

from attestation_server.attestation_policy import InvalidPolicy, Policy


def test_defaults_are_the_production_policy_and_round_trip() -> None:
    policy = Policy.from_dict({})
    assert policy == Policy()
    assert policy.allowed_roots == frozenset({"tpm", "dice"}) and not policy.allow_debug
    assert Policy.from_dict(policy.to_dict()) == policy
    custom = Policy.from_dict({"allowed_roots": ["software"], "certificate_hours": 720})
    assert Policy.from_dict(custom.to_dict()) == custom
    assert custom.policy_id != policy.policy_id


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"allowed_roots": ["tpm", "enclave"]}, "enclave"),
        ({"allowed_roots": []}, "empty"),
        ({"allowed_roots": "tpm"}, "allowed_roots"),
        ({"min_security_version": -1}, "min_security_version"),
        ({"max_evidence_age_s": 0}, "max_evidence_age_s"),
        ({"max_evidence_age_s": 3601}, "max_evidence_age_s"),
        ({"certificate_hours": 0}, "certificate_hours"),
        ({"certificate_hours": 721}, "certificate_hours"),
        ({"certificate_hours": True}, "certificate_hours"),
        ({"allow_debug": "yes"}, "allow_debug"),
        ({"alow_debug": True}, "alow_debug"),
    ],
)
def test_bad_operator_input_is_refused_by_name(data: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidPolicy) as caught:
        Policy.from_dict(data)
    assert named in caught.value.reason and caught.value.code == "bad-policy"
