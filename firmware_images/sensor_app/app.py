"""Sevenfold's sample sensor application: the payload of every sensor-app image.

A board's first stage verifies the image, measures it and hands this module
the board's device id; the application brings its sensors up (``boot``),
checks them (``health_check``: what decides whether a new release is kept or
reverted) and reports readings (``sample``). The sensors are simulated: a
reading is a function of the device id and the uptime only, so two boards
differ, a board's readings move over time, and a test can predict every value.
Readings are integers in hundredths (centi-degrees Celsius, centi-percent
relative humidity): no floating point, so CPython and MicroPython agree to the
digit. Runs unchanged under MicroPython.

The release configuration below is the only part that differs between
releases: the build (``firmware_images/sensor_app/releases.py``) rewrites the
lines between the two markers for each release, as a firmware build writes
its configuration header. What each release sets is in docs/firmware.md.
"""

# --- release configuration ---
READINGS = ("temperature",)
SAMPLE_PERIOD_S = 10
CALIBRATION = 0
# --- end of release configuration ---

TEMPERATURE_RANGE = (-4000, 8500)
"""What the simulated sensor is rated for, in centi-degrees Celsius (-40 to 85 C)."""
HUMIDITY_RANGE = (0, 10000)
"""Relative humidity, in hundredths of a percent."""
CYCLE = 48
"""Samples in one up-and-down swing of the simulated readings."""
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def _seed(device_id: str) -> int:
    """FNV-1a of the device id: a board's own offsets, the same on every interpreter."""
    value = _FNV_OFFSET
    for byte in device_id.encode():
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def _swing(tick: int, amplitude: int) -> int:
    """A triangle wave over CYCLE ticks, from -amplitude to +amplitude."""
    phase = tick % CYCLE
    half = CYCLE // 2
    rising = phase if phase < half else CYCLE - phase
    return amplitude * (2 * rising - half) // half


def _read(state: "dict[str, int]", uptime_s: int) -> "dict[str, int]":
    """The sample the sensors held at *uptime_s*: the one taken at the last sampling tick."""
    tick = uptime_s // SAMPLE_PERIOD_S
    seed = state["seed"]
    values: "dict[str, int]" = {}
    for name in READINGS:
        if name == "temperature":
            values[name] = 1800 + seed % 600 + _swing(tick, 150) + CALIBRATION
        elif name == "humidity":
            values[name] = 3500 + (seed >> 10) % 2000 - _swing(tick, 400)
    return values


def boot(device_id: str) -> "dict[str, int]":
    """Bring the sensors up and take a first sample; the state the other calls take."""
    state = {"seed": _seed(device_id)}
    _read(state, 0)
    return state


def health_check(state: "dict[str, int]") -> "str | None":
    """None when every sensor reads within its rated range now; else what is wrong."""
    ranges = {"temperature": TEMPERATURE_RANGE, "humidity": HUMIDITY_RANGE}
    values = _read(state, 0)
    for name in READINGS:
        low, high = ranges[name]
        if not low <= values[name] <= high:
            return (
                name + " reads " + str(values[name]) + ", outside the sensor's rated range ("
                + str(low) + " to " + str(high) + ")"
            )  # fmt: skip
    return None


def sample(state: "dict[str, int]", uptime_s: int) -> "dict[str, int]":
    """The readings at *uptime_s* seconds since boot, by name."""
    return _read(state, uptime_s)
