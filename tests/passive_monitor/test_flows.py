"""Flow table limits and TCP reassembly per direction."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Iterator

from passive_monitor.decode import LINKTYPE_IPV4
from passive_monitor.dissectors.modbus import ModbusTcp
from passive_monitor.flows import Endpoint, Flow, FlowTable, TcpStream, flow_key
from passive_monitor.reassembly import HoldBudget, Reassembler, seq_delta
from passive_monitor.sensor import Sensor


def test_in_order_delivery() -> None:
    r = Reassembler()
    r.syn(999)
    assert r.push(1000, b"abc") == (b"abc", False)
    assert r.push(1003, b"def") == (b"def", False)


def test_retransmission_is_dropped_and_overlap_trimmed() -> None:
    r = Reassembler()
    r.syn(999)
    r.push(1000, b"abcdef")
    assert r.push(1000, b"abcdef") == (b"", False)
    assert r.push(1003, b"defghi") == (b"ghi", False)


def test_out_of_order_segment_is_held_until_the_hole_fills() -> None:
    r = Reassembler()
    r.syn(0)
    assert r.push(4, b"efg") == (b"", False)
    assert r.held_bytes == 3
    assert r.push(1, b"abc") == (b"abcefg", False)
    assert r.held_bytes == 0


def test_hold_budget_exhausted_skips_the_hole_with_a_gap() -> None:
    r = Reassembler(max_held=8)
    r.syn(0)
    assert r.push(11, b"12345") == (b"", False)
    data, gap = r.push(16, b"6789")
    assert (data, gap) == (b"123456789", True)
    assert r.next_seq == 20


def test_ack_beyond_a_hole_releases_held_data_with_a_gap() -> None:
    r = Reassembler()
    r.syn(0)
    r.push(1, b"ab")
    r.push(10, b"late")
    assert r.acked(3) == (b"", False)
    assert r.acked(14) == (b"late", True)


def test_sequence_numbers_wrap() -> None:
    r = Reassembler()
    r.syn(0xFFFFFFFE)
    assert r.push(0xFFFFFFFF, b"ab") == (b"ab", False)
    assert r.push(1, b"cd") == (b"cd", False)
    assert seq_delta(1, 0xFFFFFFFF) == 2


def test_zero_budget_hands_data_past_a_hole_straight_on() -> None:
    r = Reassembler(max_held=0)
    r.syn(0)
    assert r.push(50, b"xyz") == (b"xyz", True)


def test_mid_stream_start_takes_the_first_segment() -> None:
    r = Reassembler()
    assert r.push(777, b"abc") == (b"abc", False)
    assert r.push(780, b"d") == (b"d", False)


def flow(ts: float) -> Flow:
    end = Endpoint(None, "10.0.0.1", 1)
    return Flow(b"\x0a\0\0\x01", 1, end, end, None, None, ts)


def test_key_is_the_same_both_ways() -> None:
    a, b = b"\x0a\0\0\x01", b"\x0a\0\0\x02"
    assert flow_key(6, a, 1000, b, 502) == flow_key(6, b, 502, a, 1000)


def test_least_recently_used_flow_is_evicted() -> None:
    table = FlowTable(max_flows=2)
    keys = [flow_key(6, bytes([10, 0, 0, n]), 1, b"\0\0\0\0", 2) for n in range(3)]
    table.add(keys[0], flow(0))
    table.add(keys[1], flow(0))
    assert table.get(keys[0], 1) is not None
    table.add(keys[2], flow(2))
    assert table.get(keys[1], 3) is None
    assert table.get(keys[0], 3) is not None
    assert table.evicted == 1


def test_idle_flows_expire() -> None:
    table = FlowTable(max_flows=10, idle_timeout=60)
    old = flow_key(6, b"\1\1\1\1", 1, b"\2\2\2\2", 2)
    fresh = flow_key(6, b"\1\1\1\1", 3, b"\2\2\2\2", 2)
    table.add(old, flow(0))
    table.add(fresh, flow(100))
    assert table.expire(120) == 1
    assert len(table) == 1 and table.evicted == 1


def syn_packets(count: int) -> Iterator[tuple[float, int, bytes]]:
    """One SYN per flow from ever-changing sources, as a scan would send."""
    template = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, b"\0" * 4, b"\x0a\0\0\x02")
        + struct.pack("!HHIIBBHHH", 0, 502, 1, 0, 0x50, 0x02, 1024, 0, 0)
    )
    for n in range(count):
        struct.pack_into("!I", template, 12, 0x0B000000 + n)
        struct.pack_into("!H", template, 20, 1024 + n % 60000)
        yield n * 0.001, LINKTYPE_IPV4, bytes(template)


def test_200k_flows_stay_within_max_flows_and_bounded_memory() -> None:
    """Once the table is full, each new flow frees the one it evicts.

    Tracing every allocation slows the run tenfold, so memory is traced from
    flow 170k on: by 180k every live flow was allocated under tracing (that
    is the table's whole footprint), and from there to 200k nothing may grow.
    """
    sensor = Sensor(max_flows=10_000)
    connections = 0
    footprint = 0
    for number, observation in enumerate(sensor.observe_packets(syn_packets(200_000)), 1):
        connections += observation.kind == "connection"
        if number == 170_000:
            tracemalloc.start()
        elif number == 180_000:
            footprint, _ = tracemalloc.get_traced_memory()
    try:
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stats = sensor.stats
    assert connections == 200_000
    assert stats.flows_active == 10_000
    assert stats.flows_evicted == 190_000
    assert stats.packets == 200_000
    assert footprint < 2048 * 10_000, f"{footprint / 10_000:.0f} bytes per flow"
    assert end - footprint < 256 << 10, f"grew {(end - footprint) / 1024:.0f} KiB in 20k flows"


def test_shared_budget_bounds_holding_across_conversations() -> None:
    budget = HoldBudget(10)
    first, second = Reassembler(65536, budget), Reassembler(65536, budget)
    first.syn(0)
    second.syn(0)
    assert first.push(5, b"12345678") == (b"", False)
    assert budget.used == 8
    assert second.push(5, b"abcde") == (b"abcde", True)
    assert budget.used == 8
    assert first.push(1, b"wxyz") == (b"wxyz12345678", False)
    assert budget.used == 0


def test_evicted_flows_return_their_held_bytes() -> None:
    budget = HoldBudget(1 << 20)
    table = FlowTable(max_flows=1)
    end = Endpoint(None, "10.0.0.1", 1)
    stream = TcpStream(ModbusTcp(), 65536, budget)
    stream.to_server.syn(0)
    stream.to_server.push(100, b"early")
    held = Flow(b"\x0a\0\0\x01", 1, end, end, stream, None, 0.0)
    table.add(flow_key(6, b"\1\1\1\1", 1, b"\2\2\2\2", 502), held)
    assert budget.used == 5
    table.add(flow_key(6, b"\1\1\1\1", 2, b"\2\2\2\2", 502), flow(1.0))
    assert budget.used == 0 and table.evicted == 1
