"""The failure outbox on a flash-like file: keys, acknowledgements, drops, and power cuts.

The sweep counts the durable steps of a clean run (appends across a wrap of the
ring, acknowledgements between them), then cuts the power at every step under
every persistence model (``power_cut.py``) and mounts the flash again as the
next boot: no record it reads is one that was not written, none that was
acknowledged comes back, and every record whose append returned is pending or
counted dropped. The counts are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core.errors import InvalidField, StorageError, TooLarge
from device_runtime.core.outbox import MAX_PAYLOAD, OVERHEAD, Outbox, encode_record, parse
from device_runtime.ports.cpython.block_device import FileBlockDevice
from tests.device_runtime.power_cut import MODELS, CuttableFlash, PowerCut, Schedule

SECTOR = 512
SECTORS = 3


OPEN: list[FileBlockDevice] = []
"""Every flash a test opened; the fixture below closes them (a sweep opens a thousand)."""


def flash(path: Path) -> FileBlockDevice:
    device = FileBlockDevice(path=path, size=SECTOR * SECTORS, erase_size=SECTOR)
    OPEN.append(device)
    return device


@pytest.fixture(autouse=True)
def close_flashes() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def payload(boot: int, seq: int) -> bytes:
    return b"record %d.%d " % (boot, seq) + bytes(40)


def pending_keys(outbox: Outbox) -> dict[tuple[int, int], bytes]:
    return {(boot, seq): data for boot, seq, data in parse(outbox.batch(1 << 20))}


def keys(*pairs: tuple[int, int]) -> bytes:
    return b"".join(boot.to_bytes(4, "big") + seq.to_bytes(4, "big") for boot, seq in pairs)


def test_records_wait_until_acknowledged_and_survive_a_remount(tmp_path: Path) -> None:
    device = flash(tmp_path / "flash")
    outbox = Outbox(device, boot=1)
    assert [outbox.append(payload(1, n)) for n in (1, 2, 3)] == [(1, 1), (1, 2), (1, 3)]
    batch = parse(outbox.batch(2 * (OVERHEAD + len(payload(1, 1)))))
    assert [(b, s) for b, s, _ in batch] == [(1, 1), (1, 2)]
    assert outbox.acknowledge(keys((1, 2), (9, 9))) == 1
    again = Outbox(device, boot=1)
    assert sorted(pending_keys(again)) == [(1, 1), (1, 3)]
    assert again.append(payload(1, 4)) == (1, 4), "a remount in the same boot keeps counting"
    later = Outbox(device, boot=2)
    assert later.append(payload(2, 1)) == (2, 1)
    assert later.pending() == 4


def test_a_full_ring_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    outbox = Outbox(flash(tmp_path / "flash"), boot=1)
    for n in range(1, 41):
        outbox.append(payload(1, n))
    held = sorted(pending_keys(outbox))
    assert outbox.dropped + len(held) == 40
    assert outbox.dropped > 0
    assert held == [(1, n) for n in range(41 - len(held), 41)], "the oldest went first"
    assert Outbox(outbox.area, boot=2).dropped == outbox.dropped, "the count is durable"


def test_acknowledged_records_are_not_counted_dropped(tmp_path: Path) -> None:
    outbox = Outbox(flash(tmp_path / "flash"), boot=1)
    for n in range(1, 41):
        outbox.append(payload(1, n))
        outbox.batch(1 << 20)
        outbox.acknowledge(keys((1, n)))
    assert outbox.dropped == 0 and outbox.pending() == 0


def test_limits_and_geometry_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TooLarge):
        encode_record(1, 1, bytes(MAX_PAYLOAD + 1))
    with pytest.raises(StorageError):
        Outbox(FileBlockDevice(path=tmp_path / "one", size=SECTOR, erase_size=SECTOR), boot=1)


def test_an_upload_with_a_damaged_record_is_refused() -> None:
    good = encode_record(3, 7, b"abc")
    assert parse(good + good) == [(3, 7, b"abc"), (3, 7, b"abc")]
    for bad, why in (
        (good[:-1], "claims"),
        (good[:-1] + bytes([good[-1] ^ 1]), "CRC"),
        (good + b"\x00", "cut short"),
        (b"\x00" + good[1:], "no outbox record"),
        (good[:2] + b"\x04\x00" + good[4:], "claims"),
    ):
        with pytest.raises(InvalidField, match=why):
            parse(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_refuses_any_bytes_with_a_reason(data: bytes) -> None:
    with contextlib.suppress(InvalidField):
        parse(data)


Log = dict[str, set[tuple[int, int]]]


def run(device: CuttableFlash, schedule: Schedule, log: Log, ack_every: int) -> None:
    """Twenty appends over a wrap of the ring, every *ack_every*th one's batch acknowledged
    (none when it is 0: the ring drops its oldest)."""
    schedule.phase = "mount"
    outbox = Outbox(device, boot=1)
    for n in range(1, 21):
        schedule.phase = "append"
        key = outbox.append(payload(1, n))
        log["appended"].add(key)
        if ack_every and n % ack_every == 0:
            schedule.phase = "acknowledge"
            sent = [(b, s) for b, s, _ in parse(outbox.batch(3 * (OVERHEAD + 52)))]
            log["settling"] = set(sent)
            outbox.acknowledge(keys(*sent))
            log["acknowledged"].update(sent)


def fresh_log() -> Log:
    return {"appended": set(), "acknowledged": set(), "settling": set()}


@pytest.mark.parametrize("ack_every", [3, 0])
def test_every_power_cut_leaves_an_outbox_that_reads_only_what_was_written(
    tmp_path: Path, ack_every: int
) -> None:
    clean = Schedule()
    run(CuttableFlash(flash(tmp_path / "clean"), clean), clean, fresh_log(), ack_every)
    outcomes: Counter[str] = Counter()
    for model in MODELS:
        for cut_at in range(clean.count):
            path = tmp_path / f"{model}-{cut_at}"
            schedule = Schedule(cut_at, model)
            log = fresh_log()
            with pytest.raises(PowerCut):
                run(CuttableFlash(flash(path), schedule), schedule, log, ack_every)
            after = Outbox(flash(path), boot=2)
            held = pending_keys(after)
            for key, data in held.items():
                assert data == payload(*key), f"{model} cut {cut_at}: {key} reads other bytes"
            assert not set(held) & log["acknowledged"], f"{model} cut {cut_at}: an ack undone"
            missing = log["appended"] - log["acknowledged"] - log["settling"] - set(held)
            assert len(missing) <= after.dropped, f"{model} cut {cut_at}: {missing} lost"
            dropped = after.dropped
            assert after.append(payload(2, 1)) == (2, 1)
            remounted = Outbox(flash(path), boot=2)
            assert remounted.pending() == len(held) + 1 - (remounted.dropped - dropped)
            outcomes[f"{model}, torn {after.torn}"] += 1
            while OPEN:
                OPEN.pop().close()
    cuts = sum(outcomes.values())
    print(f"outbox, ack every {ack_every}: {clean.count} steps, {cuts} cuts: {dict(outcomes)}")
    assert clean.count > 50


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(0, 300)),
            st.tuples(st.just("ack"), st.integers(1, 600)),
            st.tuples(st.just("remount"), st.just(0)),
        ),
        max_size=60,
    )
)
def test_any_sequence_keeps_pending_in_key_order_and_accounts_for_every_record(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]]
) -> None:
    """Appends of any size, partial acknowledgements and remounts (each a new boot): what
    is pending is exactly what was appended, less what was acknowledged and what was
    counted dropped, oldest first."""
    while OPEN:  # the examples before this one, all run inside one test
        OPEN.pop().close()
    device = flash(tmp_path_factory.mktemp("ring") / "flash")
    boot = 1
    outbox = Outbox(device, boot)
    written: dict[tuple[int, int], bytes] = {}
    acked: set[tuple[int, int]] = set()
    for action, n in steps:
        if action == "append":
            data = bytes([n % 251]) * n
            written[outbox.append(data)] = data
        elif action == "ack":
            sent = [(b, s) for b, s, _ in parse(outbox.batch(n))]
            outbox.acknowledge(keys(*sent))
            acked.update(sent)
        else:
            boot += 1
            outbox = Outbox(device, boot)
        held = pending_keys(outbox)
        assert list(held) == sorted(held), "oldest first"
        for key, data in held.items():
            assert written[key] == data
        expected = set(written) - acked
        assert set(held) <= expected
        assert len(expected) - len(held) == outbox.dropped
