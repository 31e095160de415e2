"""The board's application loader: a payload that is no application is refused with why.

The payload arrives only after its image's signature held, but a signed payload
can still be wrong (a build that packed the wrong file, an application that
misbehaves): each way is an ApplicationError naming the release, never an
exception of the application's own escaping into the board. Each application
runs in its compartment (``test_application_compartment.py`` tests that); every
one a test opens is closed when it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.application import MAX_PAYLOAD, Application, ApplicationError

GOOD = b"""
def boot(device_id):
    return {"id": device_id}

def health_check(state):
    return None

def sample(state, uptime_s):
    return {"uptime": uptime_s}
"""


@pytest.fixture
def load() -> Iterator[Callable[[bytes], Application]]:
    """``load(payload)``: an Application labelled 9.9.9, closed when the test ends."""
    opened: list[Application] = []

    def loaded(payload: bytes) -> Application:
        opened.append(Application(payload, label="firmware 9.9.9"))
        return opened[-1]

    yield loaded
    for application in opened:
        application.close()


def _refused(payload: bytes, match: str) -> None:
    with pytest.raises(ApplicationError, match=match):
        Application(payload, label="firmware 9.9.9").close()


def test_a_good_payload_boots_checks_and_samples(load: Callable[[bytes], Application]) -> None:
    application = load(GOOD)
    application.boot("dev-1")
    assert application.health_check() is None
    assert application.sample(7) == {"uptime": 7}


def test_a_payload_that_is_no_python_module_is_refused() -> None:
    _refused(b"def boot(:\n", r"firmware 9\.9\.9: the payload is not Python at line 1")
    _refused(b"x = 1\n\xff\xfe", r"not UTF-8 Python \(byte 6\)")
    _refused(b"x = 1\x00\n", "not Python")
    _refused(b"#" * (MAX_PAYLOAD + 1), "over the slot's 65536")
    _refused(b"-" * 60000 + b"1", "nests too deep to compile")


def test_a_module_missing_an_entry_point_is_refused() -> None:
    _refused(GOOD.replace(b"def sample", b"def sampled"), r"has no sample\(\)")
    _refused(GOOD + b"health_check = 3\n", r"has no health_check\(\)")


def test_a_module_that_crashes_as_it_loads_is_its_crash() -> None:
    _refused(b"x = 1\nraise SystemExit(3)\n", r"crashed loading: SystemExit: 3 \(line 2\)")
    _refused(b"import no_such_module_here\n", "crashed loading: ModuleNotFoundError")


def test_what_the_application_answers_is_checked(load: Callable[[bytes], Application]) -> None:
    def loaded(sample_body: str, health: str = "None") -> Application:
        source = GOOD.replace(b"return None", f"return {health}".encode())
        source = source.replace(b'return {"uptime": uptime_s}', f"return {sample_body}".encode())
        application = load(source)
        application.boot("dev-1")
        return application

    for bad in ("[1]", '{"t": 1.5}', '{"t": True}', '{1: 2}', '{"a b": 1}', '{"t": 2**31}',
                "{str(n): n for n in range(17)}"):  # fmt: skip
        with pytest.raises(ApplicationError, match="sample"):
            loaded(bad).sample(1)
    assert loaded('{"t": -2**31}').sample(1) == {"t": -(2**31)}
    with pytest.raises(ApplicationError, match=r"crashed sampling: KeyError"):
        loaded('{}["x"]').sample(1)
    assert loaded("{}", health="'too hot\\nreally'").health_check() == "too hot really"
    assert "not None or a reason" in str(loaded("{}", health="False").health_check())
    with pytest.raises(ApplicationError, match="health check: ValueError: invalid literal"):
        loaded("{}", health="int('no')").health_check()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_payloads_load_or_are_refused_with_a_reason(payload: bytes) -> None:
    try:
        Application(payload, label="firmware 0.0.1").close()
    except ApplicationError as exc:
        assert exc.reason.startswith("firmware 0.0.1")
