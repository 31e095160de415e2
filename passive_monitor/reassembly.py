"""In-order delivery of one direction of a TCP conversation.

Dissectors need the byte stream as the endpoint saw it: each byte once, in
order. Retransmitted bytes are trimmed, segments that arrive early are held,
and when bytes are evidently lost — the hold budget is exhausted or the peer
acknowledges data the capture never saw — the hole is skipped and reported as
a gap so the dissector can resynchronise.

Held data is bounded twice: per direction (``max_held``) and across the whole
sensor (a shared :class:`HoldBudget`), because a hostile sender can open many
conversations and fill each one's allowance.
"""

from __future__ import annotations

SEQ_MOD = 1 << 32
HALF = 1 << 31


def seq_delta(a: int, b: int) -> int:
    """Signed distance from *b* to *a* in 32-bit sequence space."""
    return ((a - b + HALF) % SEQ_MOD) - HALF


class HoldBudget:
    """Bytes held out of order across every conversation of one sensor."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


UNLIMITED = HoldBudget(1 << 62)


class Reassembler:
    """One direction's reassembly state.

    ``push`` returns the bytes now deliverable and whether a gap precedes them.
    The first data seen sets the starting point, unless a SYN did, which is how
    a conversation picked up mid-stream starts.
    """

    __slots__ = ("budget", "held", "held_bytes", "max_held", "next_seq")

    def __init__(self, max_held: int = 65536, budget: HoldBudget = UNLIMITED) -> None:
        self.next_seq: int | None = None
        self.held: dict[int, bytes] = {}
        self.held_bytes = 0
        self.max_held = max_held
        self.budget = budget

    def syn(self, seq: int) -> None:
        """The SYN's sequence number; data starts one after it."""
        self.next_seq = (seq + 1) % SEQ_MOD
        self.release()

    def release(self) -> None:
        """Drop everything held (the flow is closing or being evicted)."""
        self.budget.used -= self.held_bytes
        self.held.clear()
        self.held_bytes = 0

    def push(self, seq: int, payload: bytes) -> tuple[bytes, bool]:
        """Accept a segment; return ``(deliverable bytes, gap before them)``."""
        expected = self.next_seq
        if expected is None:
            self.next_seq = (seq + len(payload)) % SEQ_MOD
            return payload, False
        delta = seq_delta(seq, expected)
        if delta > 0:
            self._hold(seq, payload)
            budget = self.budget
            if self.held_bytes > self.max_held or budget.used > budget.limit:
                return self._resume_at_earliest(), True
            return b"", False
        if delta < 0:
            if -delta >= len(payload):
                return b"", False
            payload = payload[-delta:]
        self.next_seq = (expected + len(payload)) % SEQ_MOD
        if self.held:
            return self._drain(payload), False
        return payload, False

    def acked(self, ack: int) -> tuple[bytes, bool]:
        """The peer acknowledged *ack*: bytes before it that never came are lost."""
        if self.next_seq is None or not self.held or seq_delta(ack, self.next_seq) <= 0:
            return b"", False
        return self._resume_at_earliest(), True

    def _hold(self, seq: int, payload: bytes) -> None:
        old = len(self.held.get(seq, b""))
        if len(payload) > old:
            self.held[seq] = payload
            self.held_bytes += len(payload) - old
            self.budget.used += len(payload) - old

    def _take(self, seq: int) -> bytes:
        chunk = self.held.pop(seq)
        self.held_bytes -= len(chunk)
        self.budget.used -= len(chunk)
        return chunk

    def _resume_at_earliest(self) -> bytes:
        """Give up on the hole and continue from the earliest held segment."""
        base = self.next_seq or 0
        first = min(self.held, key=lambda s: seq_delta(s, base))
        data = self._take(first)
        self.next_seq = (first + len(data)) % SEQ_MOD
        return self._drain(data)

    def _drain(self, data: bytes) -> bytes:
        """Append held segments that have become contiguous."""
        parts = [data]
        while self.held:
            expected = self.next_seq or 0
            progressed = False
            for seq in list(self.held):
                delta = seq_delta(seq, expected)
                if delta > 0:
                    continue
                chunk = self._take(seq)
                if -delta < len(chunk):
                    chunk = chunk[-delta:]
                    parts.append(chunk)
                    expected = (expected + len(chunk)) % SEQ_MOD
                    self.next_seq = expected
                    progressed = True
            if not progressed:
                break
        return b"".join(parts) if len(parts) > 1 else data
