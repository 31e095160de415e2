"""Device side of the protocol-limit measurement: decode every message in a folder.

Runs as ``micropython -X heapsize=64K -m tests.device_runtime.limits_check
FOLDER RESERVE_PERCENT STACK_PERCENT [SIZE DEPTH PER_CONTAINER TOTAL]`` with
the device core loaded from the firmware bundle's bytecode; started as a
module, nothing is compiled from source in the device's heap.
``tests/device_runtime/test_protocol_limits.py`` builds the messages on
CPython, so none of the building costs the device's heap either. It prints
the free heap and stack once the core is in, then one line per message::

    case NAME SIZE OUTCOME

OUTCOME is ``decoded`` or the error's ``code: reason``. Each message is
decoded while *reserve_percent* of the free heap is held back and
*stack_percent* of the available stack is taken by other frames: a message
that decodes like that decodes with that much to spare. The reserve is held
in small pieces, as the rest of a firmware holds its heap: they fill the
holes between long-lived objects first, so the decoder is left with the
heap's large free runs minus whatever the pieces did not fit elsewhere.
"""

import gc
import os
import sys

from device_runtime.core import agent, protocol
from device_runtime.core.errors import ProtocolError

PIECE = 256


def _nested_call(frames, action, argument):
    """``action(argument)`` from *frames* levels of recursion down."""
    if frames:
        return _nested_call(frames - 1, action, argument)
    return action(argument)


def _stack_frames():
    """How many levels of _nested_call fit on the stack from here."""
    frames = 16
    try:
        while True:
            _nested_call(frames, _nothing, None)
            frames += 16
    except RuntimeError:
        return frames - 16


def _nothing(argument):
    return argument


def _decode(data):
    try:
        protocol.decode(data, protocol.MAX_DOWN_MESSAGE)
    except ProtocolError as exc:
        return exc.explain()
    return "decoded"


def main(folder, reserve_percent, stack_percent, limits):
    """Decode every file of *folder*; *limits*, when given, replaces the protocol's
    (size, depth, per container, total)."""
    if limits:
        protocol.MAX_DOWN_MESSAGE = limits[0]
        protocol.MAX_DEPTH = limits[1]
        protocol.MAX_ITEMS = limits[2]
        protocol.MAX_TOTAL_ITEMS = limits[3]
    names = sorted(os.listdir(folder))
    frames = _stack_frames()
    taken = frames * stack_percent // 100
    gc.collect()
    free = gc.mem_free()
    reserve = free * reserve_percent // 100
    print("core " + agent.__name__ + " free " + str(free) + " reserve " + str(reserve))
    print("stack frames " + str(frames) + " taken " + str(taken))
    for name in names:
        path = folder + "/" + name
        size = os.stat(path)[6]
        with open(path, "rb") as handle:
            data = handle.read(size)
        gc.collect()
        held = [bytearray(PIECE) for _ in range(reserve // PIECE)]
        outcome = _nested_call(taken, _decode, data)
        del held
        data = None
        print("case " + name + " " + str(size) + " " + outcome)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(n) for n in sys.argv[4:]])
