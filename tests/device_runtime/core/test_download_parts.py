"""The download's small parts, on CPython and under MicroPython: the durable record (what it
refuses and why), the back-off schedule, the bandwidth cap (on a clock port whose time moves
only when the device sleeps)."""

from device_runtime.core import download_record
from device_runtime.core.bandwidth_cap import BandwidthCap
from device_runtime.core.download_record import DownloadRecord, decode
from device_runtime.core.retry_schedule import RetrySchedule
from tests.device_runtime.stepped_clock import SteppedClock

PORTABLE = True

SHA = bytes(range(32))
RECORD = DownloadRecord("board/board-1.1.0.img", 150_000, SHA, 131_072)


class MemoryStore:
    def __init__(self):
        self.values = {}

    def read(self, key):
        return self.values.get(key)

    def write(self, key, value):
        self.values[key] = value


def test_a_record_reads_back_as_written():
    back = decode(RECORD.encode())
    assert isinstance(back, DownloadRecord)
    assert (back.name, back.length, back.sha256, back.offset) == (
        RECORD.name, RECORD.length, SHA, RECORD.offset,
    )  # fmt: skip
    assert back.same_target(RECORD.name, 150_000, SHA)
    assert not back.same_target(RECORD.name, 150_001, SHA)
    assert not back.same_target("other.img", 150_000, SHA)


def test_a_store_without_a_record_reads_as_none_and_a_cleared_one_too():
    store = MemoryStore()
    assert download_record.load(store) == ""
    download_record.save(store, RECORD)
    assert download_record.load(store).offset == 131_072
    download_record.clear(store)
    assert download_record.load(store) == ""


def test_every_cut_of_a_record_is_refused():
    data = RECORD.encode()
    for end in range(1, len(data)):
        problem = decode(data[:end])
        assert isinstance(problem, str), end
        assert "too short" in problem or "CRC" in problem, problem


def test_every_flipped_bit_of_a_record_is_refused():
    data = RECORD.encode()
    for at in range(len(data)):
        for bit in (0x01, 0x80):
            broken = bytearray(data)
            broken[at] ^= bit
            assert isinstance(decode(bytes(broken)), str), (at, bit)


def test_a_record_with_a_sound_crc_is_still_checked():
    import binascii
    import struct

    def sealed(body):
        return body + struct.pack(">I", binascii.crc32(body) & 0xFFFFFFFF)

    good = RECORD.encode()[:-4]
    past = DownloadRecord("x", 10, SHA, 11).encode()
    assert "past its length" in decode(past)
    assert "does not fill" in decode(sealed(good + b"extra"))
    assert "not in format 1" in decode(sealed(b"SFDL\x02" + good[5:]))
    bad_name = DownloadRecord("ab", 10, SHA, 0).encode()[:-6] + b"\xff\xfe"
    assert "not UTF-8" in decode(sealed(bad_name))


def test_full_jitter_stays_under_the_doubling_ceiling_and_gives_up_after_the_attempts():
    clock = SteppedClock()
    draws = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x80\x00\x00\x00"]
    schedule = RetrySchedule(clock, lambda n: draws[len(clock.sleeps) % 3], base_ms=100,
                             cap_ms=1000, attempts=4)  # fmt: skip
    assert schedule.delay_ms(1) == 100 * 1 and schedule.delay_ms(5) == 1000  # all ones: the top
    assert [schedule.wait(k) for k in (1, 2, 3, 4)] == [True, True, True, False]
    assert clock.sleeps == [100, 0, 200]


def test_the_cap_sleeps_off_what_is_taken_past_the_burst():
    clock = SteppedClock()
    cap = BandwidthCap(clock, 10_000, burst=2_000)
    cap.take(2_000)
    assert clock.sleeps == []
    cap.take(1_000)
    assert clock.sleeps == [100]
    clock.sleep_ms(1_000)  # idle: the bucket refills, to its burst only
    cap.take(2_000)
    assert clock.sleeps == [100, 1_000]
    cap.take(3)
    assert clock.sleeps[-1] == 1  # 0.3 ms, rounded up
    for _ in range(100):
        cap.take(500)
    assert 5_000 - 1 <= sum(clock.sleeps[3:]) <= 5_000 + 1
